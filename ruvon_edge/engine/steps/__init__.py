"""Step handlers, one module per step kind, looked up in a table by ``StepType``.

A handler is ``async def handler(run: StepRun) -> Outcome``: it runs the step
outside any transaction and says what happened; the runner commits it. A
handler's module is imported the first time a step of its kind runs, so a
device that never makes an HTTP call never imports the HTTP handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import import_module

from ruvon_edge.definition.models import StepType
from ruvon_edge.engine.outcome import Outcome, StepRun

Handler = Callable[[StepRun], Awaitable[Outcome]]

_TABLE: dict[StepType, tuple[str, str]] = {
    StepType.STANDARD: ("function", "run_function_step"),
    StepType.DECISION: ("function", "run_function_step"),
    StepType.HUMAN_IN_LOOP: ("human", "run_human_step"),
    StepType.ASYNC: ("async_task", "run_async_step"),
    StepType.PARALLEL: ("parallel", "run_parallel_step"),
    StepType.HTTP: ("http", "run_http_step"),
    StepType.SUB_WORKFLOW: ("sub_workflow", "run_sub_workflow_step"),
    StepType.LOOP: ("loop", "run_loop_step"),
    StepType.FIRE_AND_FORGET: ("fire_and_forget", "run_fire_and_forget_step"),
    StepType.AUDIT_EMIT: ("audit_emit", "run_audit_emit_step"),
    StepType.CRON_SCHEDULE: ("cron_schedule", "run_cron_schedule_step"),
}
_loaded: dict[StepType, Handler] = {}


def handler_for(step_type: StepType) -> Handler:
    """Return the handler of ``step_type``; NotImplementedError names a kind this build lacks."""
    handler = _loaded.get(step_type)
    if handler is None:
        try:
            module, name = _TABLE[step_type]
        except KeyError:
            raise NotImplementedError(
                f"step type {step_type.value} is not supported by this engine"
            ) from None
        handler = _loaded[step_type] = getattr(import_module(f"{__name__}.{module}"), name)
    return handler

"""Step handlers, one per step kind, looked up in a table by ``StepType``.

A handler is ``async def handler(run: StepRun) -> Outcome``: it runs the step
outside any transaction and says what happened; the runner commits it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ruvon_edge.definition.models import StepType
from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.engine.steps.async_task import run_async_step
from ruvon_edge.engine.steps.fire_and_forget import run_fire_and_forget_step
from ruvon_edge.engine.steps.function import run_function_step
from ruvon_edge.engine.steps.http import run_http_step
from ruvon_edge.engine.steps.human import run_human_step
from ruvon_edge.engine.steps.loop import run_loop_step
from ruvon_edge.engine.steps.parallel import run_parallel_step
from ruvon_edge.engine.steps.sub_workflow import run_sub_workflow_step

Handler = Callable[[StepRun], Awaitable[Outcome]]

HANDLERS: dict[StepType, Handler] = {
    StepType.STANDARD: run_function_step,
    StepType.DECISION: run_function_step,
    StepType.HUMAN_IN_LOOP: run_human_step,
    StepType.ASYNC: run_async_step,
    StepType.PARALLEL: run_parallel_step,
    StepType.HTTP: run_http_step,
    StepType.SUB_WORKFLOW: run_sub_workflow_step,
    StepType.LOOP: run_loop_step,
    StepType.FIRE_AND_FORGET: run_fire_and_forget_step,
}


def handler_for(step_type: StepType) -> Handler:
    """Return the handler of ``step_type``; NotImplementedError names a kind this build lacks."""
    try:
        return HANDLERS[step_type]
    except KeyError:
        raise NotImplementedError(
            f"step type {step_type.value} is not supported by this engine"
        ) from None

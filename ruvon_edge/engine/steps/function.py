"""STANDARD and DECISION steps: call the step's function, honour directives.

A step that paused with ``WorkflowPauseDirective`` is done when input
arrives: it completes as it stood and the input goes to the next step
(``**user_input`` and ``context.validated_input``), as in the reference.
"""

from __future__ import annotations

from ruvon_edge.definition.models import StepType
from ruvon_edge.directives import (
    StartSubWorkflowDirective,
    WorkflowJumpDirective,
    WorkflowPauseDirective,
)
from ruvon_edge.engine.invoke import call_step
from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.engine.steps.sub_workflow import follow_child, followed_child, start_child
from ruvon_edge.status import WorkflowStatus


async def run_function_step(run: StepRun) -> Outcome:
    """Run ``step.function`` with retries and timeout; a jump, pause or sub-workflow directive steers the runner."""
    if followed_child(run):  # the function started a child: the step now follows it
        return await follow_child(run)
    if run.resumed and run.memory.get("paused"):  # input after a pause: the step is done
        return Outcome(details={"resumed_after_pause": True}, hand_on_input=True)
    if run.step.function is None:
        return Outcome(result=dict(run.user_input or {}))
    function = run.engine.registry.resolve(run.step.function)
    try:
        state, result, attempts = await call_step(
            run.engine.execution,
            function,
            run.state,
            run.context,
            run.user_input or {},
            retry=run.step.retry,
            timeout=run.step.timeout_seconds,
        )
    except WorkflowJumpDirective as jump:
        return Outcome(
            result=jump.result, state=jump.state, jump=jump.target, details={"jump": jump.target}
        )
    except WorkflowPauseDirective as pause:
        if run.step.type != StepType.HUMAN_IN_LOOP:
            run.memory["paused"] = True
        return Outcome(
            result=pause.result,
            state=pause.state,
            wait=WorkflowStatus.WAITING_HUMAN,
            wait_reason=pause.reason,
        )
    except StartSubWorkflowDirective as start:
        return start_child(
            run, start.workflow_type, start.initial_data, start.owner_id, start.data_region
        )
    return Outcome(
        result=result, state=state, details={"attempts": attempts} if attempts > 1 else {}
    )

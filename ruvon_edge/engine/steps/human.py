"""HUMAN_IN_LOOP steps: wait for input, then run the function with it (or merge it)."""

from __future__ import annotations

from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.engine.steps.function import run_function_step
from ruvon_edge.status import WorkflowStatus


async def run_human_step(run: StepRun) -> Outcome:
    """Pause on arrival; on resume the (already validated) input goes to the function or into the state.

    Arriving with non-empty input (``next_step(user_input={...})``, or input a
    paused step handed on) runs the step at once, as in the reference; empty
    input on arrival still pauses.
    """
    if run.row["status"] != WorkflowStatus.WAITING_HUMAN and not run.user_input:
        return Outcome(
            wait=WorkflowStatus.WAITING_HUMAN,
            wait_reason=f"waiting for input to step {run.step.name!r}",
        )
    return await run_function_step(run)

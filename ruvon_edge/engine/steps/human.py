"""HUMAN_IN_LOOP steps: wait for input, then run the function with it (or merge it)."""

from __future__ import annotations

from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.engine.steps.function import run_function_step
from ruvon_edge.status import WorkflowStatus


async def run_human_step(run: StepRun) -> Outcome:
    """Pause on arrival; on resume the (already validated) input goes to the function or into the state."""
    if not run.resumed:
        return Outcome(
            wait=WorkflowStatus.WAITING_HUMAN,
            wait_reason=f"waiting for input to step {run.step.name!r}",
        )
    return await run_function_step(run)

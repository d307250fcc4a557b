"""SUB_WORKFLOW steps and ``StartSubWorkflowDirective``: a child the parent waits for.

Starting. The child row is built here and committed by the runner in the SAME
transaction as the parent's PENDING_SUB_WORKFLOW status, with the child's id
in the step's memory: a reload or a crash can never spawn a second child, and
there is never a waiting parent without its child (or the reverse).

Following. While the parent waits, running its step again (the runner does it
right after the spawn commit; ``engine.run(parent)`` does it after a crash;
``engine.on_child_status`` does it when a child reports) reads the child:

* ACTIVE — run it here (unless another coroutine of this engine is driving it);
* COMPLETED — its state lands in ``state.sub_workflow_results[<child type>]``,
  and ``sub_workflow_results[<child id>]`` holds ``{workflow_type, status,
  state, final_result}`` (both shapes the reference documents; ``final_result``
  is the child's final state), and the step completes;
* any failure or CANCELLED — the step fails and the parent ends
  FAILED_CHILD_WORKFLOW (in saga mode after its compensations ran). The
  memory is cleared first, so ``engine.retry(parent)`` starts a fresh child;
* WAITING_HUMAN / WAITING_CHILD_HUMAN_INPUT — the parent waits
  WAITING_CHILD_HUMAN_INPUT; other waits keep it PENDING_SUB_WORKFLOW.
"""

from __future__ import annotations

from typing import Any

from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.engine.templating import render_structure, template_context
from ruvon_edge.errors import StepFailedError
from ruvon_edge.providers.persistence import ConcurrentUpdateError, WorkflowNotFoundError
from ruvon_edge.status import TERMINAL, WorkflowStatus

S = WorkflowStatus

_HUMAN_WAITS = frozenset({S.WAITING_HUMAN, S.WAITING_CHILD_HUMAN_INPUT})


class ChildWorkflowFailedError(StepFailedError):
    """The child workflow ended without completing; the parent ends FAILED_CHILD_WORKFLOW."""

    workflow_status = S.FAILED_CHILD_WORKFLOW


async def run_sub_workflow_step(run: StepRun) -> Outcome:
    """Start the declared child (``workflow_type`` + rendered ``initial_data``), or follow it."""
    if followed_child(run):
        return await follow_child(run)
    data = render_structure(
        run.engine.template_engine, run.step.initial_data, template_context(run), "initial_data"
    )
    return start_child(run, run.step.workflow_type or "", data)


def followed_child(run: StepRun) -> str | None:
    """The id of the child this step waits on, if it started one (read without touching memory)."""
    return run.row["context"].get("steps", {}).get(run.step.name, {}).get("child_id")


def start_child(
    run: StepRun,
    workflow_type: str,
    initial_data: dict[str, Any],
    owner_id: str | None = None,
    data_region: str | None = None,
) -> Outcome:
    """Build the child (committed with the parent's wait) and remember its id in the step's memory."""
    child = run.engine.new_instance(
        workflow_type,
        initial_data,
        parent_id=run.row["id"],
        owner_id=owner_id or run.row.get("owner_id"),
        data_region=data_region or run.row.get("data_region"),
    )
    child_id = child.workflow["id"]
    run.memory.clear()
    run.memory.update(child_id=child_id, child_type=workflow_type)
    return Outcome(
        wait=S.PENDING_SUB_WORKFLOW,
        wait_reason=f"waiting for child workflow {workflow_type} {child_id}",
        children=[child],
        merge=False,
    )


async def follow_child(run: StepRun) -> Outcome:
    """Read (and if need be run) the child; complete, fail or keep waiting accordingly."""
    engine = run.engine
    child_id, child_type = run.memory["child_id"], run.memory["child_type"]
    try:
        child = await engine.get_workflow(child_id)
        if child.status == S.ACTIVE and not engine.is_running(child_id):
            try:
                child = await engine.run(child_id)
            except ConcurrentUpdateError:  # another process drives it; it reports when it stops
                child = await engine.get_workflow(child_id)
    except WorkflowNotFoundError:
        run.memory.clear()
        raise ChildWorkflowFailedError(
            f"child workflow {child_type} {child_id} does not exist"
        ) from None
    details = {"child_id": child_id, "child_type": child_type, "child_status": child.status}
    if child.status == S.COMPLETED:
        results = dict(run.row["state"].get("sub_workflow_results") or {})
        final = child.state.model_dump(mode="json")
        results[child_type] = final
        results[child_id] = {
            "workflow_type": child_type,
            "status": child.status,
            "state": final,
            "final_result": final,
        }
        return Outcome(result={"sub_workflow_results": results}, details=details)
    if child.status in TERMINAL:
        run.memory.clear()
        reason = f": {child.error}" if child.error else ""
        raise ChildWorkflowFailedError(
            f"child workflow {child_type} {child_id} ended {child.status}{reason}"
        )
    wait = S.WAITING_CHILD_HUMAN_INPUT if child.status in _HUMAN_WAITS else S.PENDING_SUB_WORKFLOW
    return Outcome(
        wait=wait,
        wait_reason=f"child workflow {child_type} {child_id} is {child.status}",
        merge=False,
        details=details,
    )

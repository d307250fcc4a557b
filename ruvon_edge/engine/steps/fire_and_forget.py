"""FIRE_AND_FORGET steps: start an independent workflow; the caller does not wait for it.

The new workflow (``workflow_type`` with ``initial_data`` rendered like an
HTTP step's templates) has no parent link, so its outcome never affects the
caller; ``context.spawned_by`` records where it came from. It is created in
the same commit that completes this step, so a crash can neither lose it nor
start it twice. After that commit the engine runs it in the background
(``engine.run_in_background``; ``engine.close`` waits for such runs); one
interrupted by a crash stays ACTIVE and is picked up by ``engine.run`` or
``ruvon-edge serve``. The step appends a record to the state's
``spawned_workflows`` list, as the reference does:
``{"workflow_id", "workflow_type", "step", "status": "ACTIVE"}`` (the status
at spawn time; read the workflow for its outcome).
"""

from __future__ import annotations

from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.engine.templating import render_structure, template_context


async def run_fire_and_forget_step(run: StepRun) -> Outcome:
    """Build the independent workflow (committed with this step) and record its id."""
    step = run.step
    data = render_structure(
        run.engine.template_engine, step.initial_data, template_context(run), "initial_data"
    )
    spawned = run.engine.new_instance(
        step.workflow_type or "",
        data,
        owner_id=run.row.get("owner_id"),
        data_region=run.row.get("data_region"),
    )
    child_id = spawned.workflow["id"]
    spawned.workflow["context"]["spawned_by"] = {"workflow_id": run.row["id"], "step": step.name}
    record = {
        "workflow_id": child_id,
        "workflow_type": step.workflow_type,
        "step": step.name,
        "status": spawned.workflow["status"],
    }
    records = [*(run.row["state"].get("spawned_workflows") or []), record]
    details = {"spawned_workflow_id": child_id, "spawned_workflow_type": step.workflow_type}
    return Outcome(result={"spawned_workflows": records}, children=[spawned], details=details)

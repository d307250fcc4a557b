"""ASYNC steps on a real SQLite file: dispatch, a worker completing the task, failures, saga, cancel."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ruvon_edge import WorkflowEngine, WorkflowRegistry
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

FIXTURES = Path(__file__).parents[1] / "worker" / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))

JOB = """
workflow_type: Job
initial_state_model_path: worker_app.models.JobState
steps:
  - name: Double
    type: ASYNC
    function: worker_app.steps.double
  - name: Finish
    function: worker_app.steps.finish
"""

SAGA = """
workflow_type: SagaJob
initial_state_model_path: worker_app.models.JobState
saga_mode: true
steps:
  - name: Reserve
    function: worker_app.steps.reserve
    compensate_function: worker_app.steps.release
  - name: Charge
    type: ASYNC
    function: worker_app.steps.boom
  - name: Finish
    function: worker_app.steps.finish
"""

PLAIN_FAIL = """
workflow_type: FailJob
initial_state_model_path: worker_app.models.JobState
steps:
  - name: Charge
    type: ASYNC
    function: worker_app.steps.boom
"""


@pytest.fixture
async def engine(tmp_path: Path):
    registry = WorkflowRegistry(allowed_modules=["worker_app"])
    for text in (JOB, SAGA, PLAIN_FAIL):
        registry.register_yaml(text)
    async with WorkflowEngine(
        SQLitePersistenceProvider(str(tmp_path / "edge.db")), registry
    ) as engine:
        yield engine


async def drain(engine, worker_id: str = "w1") -> int:
    """Claim and run queued tasks until the queue is empty, as ``serve`` does; return how many ran."""
    ran = 0
    while (task := await engine.persistence.claim_next_task(worker_id)) is not None:
        await engine.run_async_task(task)
        ran += 1
    return ran


async def test_dispatch_commits_task_with_pending_async_in_one_commit(engine):
    """Reaching an ASYNC step writes PENDING_ASYNC and the queued task row in a single SQLite COMMIT."""
    wf = await engine.start_workflow("Job", {"value": 21})
    before = engine.persistence.commit_count
    wf = await engine.run(wf.id)
    assert wf.status == "PENDING_ASYNC"
    assert engine.persistence.commit_count - before == 1
    task_id = f"{wf.id}:Double:1"
    task = await engine.persistence.get_task(task_id)
    assert task["status"] == "QUEUED"
    assert task["payload"]["state"]["value"] == 21
    assert await engine.execution.get_task_status(task_id) == "QUEUED"


async def test_worker_completes_task_and_workflow_continues_with_result(engine):
    """A worker runs the task; the result is merged and the workflow runs on to COMPLETED."""
    wf = await engine.run((await engine.start_workflow("Job", {"value": 21})).id)
    assert await drain(engine) == 1
    wf = await engine.get_workflow(wf.id)
    assert wf.status == "COMPLETED"
    assert wf.state.doubled == 42
    assert wf.state.trail == ["finish"]
    assert await engine.execution.get_task_status(f"{wf.id}:Double:1") == "COMPLETED"
    events = [
        (a.event_type, a.step_name, a.old_status, a.new_status)
        for a in await engine.get_audit_log(wf.id)
    ]
    assert ("STEP_COMPLETED", "Double", "PENDING_ASYNC", "ACTIVE") in events


async def test_duplicate_completion_report_changes_nothing(engine):
    """Reporting a finished task again (at-least-once delivery) neither re-merges nor re-runs anything."""
    wf = await engine.run((await engine.start_workflow("Job", {"value": 1})).id)
    await drain(engine)
    done = await engine.get_workflow(wf.id)
    again = await engine.complete_async_task(f"{wf.id}:Double:1", result={"doubled": 999})
    assert again.status == "COMPLETED"
    assert again.state.doubled == 2
    assert again.version == done.version


async def test_task_raising_fails_the_workflow_with_the_task_error(engine):
    """A task that raises fails its workflow (FAILED) and the error names the task and the exception."""
    wf = await engine.run((await engine.start_workflow("FailJob", {})).id)
    await drain(engine)
    wf = await engine.get_workflow(wf.id)
    assert wf.status == "FAILED"
    assert "RuntimeError: payment terminal offline" in wf.error
    task = await engine.persistence.get_task(f"{wf.id}:Charge:1")
    assert task["status"] == "FAILED"


async def test_task_raising_in_saga_mode_compensates(engine):
    """In saga mode a failed task rolls back the completed steps (FAILED_ROLLED_BACK, release ran)."""
    wf = await engine.run((await engine.start_workflow("SagaJob", {})).id)
    assert wf.status == "PENDING_ASYNC"
    await drain(engine)
    wf = await engine.get_workflow(wf.id)
    assert wf.status == "FAILED_ROLLED_BACK"
    assert wf.state.released is True


async def test_external_error_report_fails_the_step(engine):
    """``complete_async_task(error=...)`` from a worker fails the step with that reason."""
    wf = await engine.run((await engine.start_workflow("Job", {"value": 3})).id)
    task = await engine.persistence.claim_next_task("w1")
    wf = await engine.complete_async_task(task["task_id"], error="scanner jammed")
    assert wf.status == "FAILED"
    assert "scanner jammed" in wf.error


async def test_cancelling_the_workflow_cancels_its_task(engine):
    """Cancelling a PENDING_ASYNC workflow cancels its queued task; no worker runs it afterwards."""
    wf = await engine.run((await engine.start_workflow("Job", {"value": 5})).id)
    wf = await engine.cancel(wf.id)
    assert wf.status == "CANCELLED"
    assert await engine.execution.get_task_status(f"{wf.id}:Double:1") == "CANCELLED"
    assert await drain(engine) == 0


async def test_running_task_of_cancelled_workflow_is_ignored(engine):
    """A task already running when its workflow is cancelled leaves the workflow CANCELLED."""
    wf = await engine.run((await engine.start_workflow("Job", {"value": 5})).id)
    task = await engine.persistence.claim_next_task("w1")
    await engine.cancel(wf.id)
    wf = await engine.run_async_task(task)
    assert wf.status == "CANCELLED"
    assert wf.state.doubled is None


async def test_cancelling_the_task_fails_the_waiting_workflow(engine):
    """``execution.cancel_task`` on a running task makes its report fail the step, naming the cancel."""
    wf = await engine.run((await engine.start_workflow("Job", {"value": 5})).id)
    task = await engine.persistence.claim_next_task("w1")
    assert await engine.execution.cancel_task(task["task_id"]) is True
    wf = await engine.complete_async_task(task["task_id"], result={"doubled": 10})
    assert wf.status == "FAILED"
    assert "cancelled" in wf.error


async def test_dead_worker_task_is_requeued_then_fails_the_workflow(engine):
    """A task whose worker went silent is requeued up to its attempts, then the workflow fails with the reason."""
    wf = await engine.run((await engine.start_workflow("Job", {"value": 5})).id)
    task_id = f"{wf.id}:Double:1"
    for attempt in (1, 2, 3):
        claimed = await engine.persistence.claim_next_task(f"dead-{attempt}")
        assert claimed["task_id"] == task_id and claimed["attempts"] == attempt
        stale = await engine.persistence.requeue_stale_tasks(0)
        assert [t["task_id"] for t in stale] == [task_id]
    assert stale[0]["status"] == "FAILED"
    wf = await engine.complete_async_task(task_id)
    assert wf.status == "FAILED"
    assert "worker died" in wf.error


async def test_retry_after_failure_dispatches_a_new_task(engine):
    """``retry`` of a workflow whose task failed dispatches a fresh task id (``:2``), not the old one."""
    wf = await engine.run((await engine.start_workflow("FailJob", {})).id)
    await drain(engine)
    wf = await engine.retry(wf.id)
    assert wf.status == "PENDING_ASYNC"
    assert (await engine.persistence.get_task(f"{wf.id}:Charge:2"))["status"] == "QUEUED"

"""Zombie recovery: a stale heartbeat fails the workflow only if nothing changed since the scan."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ruvon_edge import WorkflowEngine, WorkflowRegistry
from ruvon_edge.engine import zombies
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon_edge.providers.persistence import ConcurrentUpdateError

FIXTURES = Path(__file__).parents[1] / "worker" / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))

PLAIN = """
workflow_type: Plain
initial_state_model_path: worker_app.models.JobState
steps:
  - name: Prepare
    function: worker_app.steps.prepare
  - name: Finish
    function: worker_app.steps.finish
"""
SAFE = PLAIN.replace("Plain", "Safe").replace(
    "worker_app.steps.prepare", "worker_app.steps.prepare\n    retry_safe: true"
)
ASYNC = """
workflow_type: Waits
initial_state_model_path: worker_app.models.JobState
steps:
  - name: Double
    type: ASYNC
    function: worker_app.steps.double
"""


@pytest.fixture
async def engine(tmp_path: Path):
    registry = WorkflowRegistry(allowed_modules=["worker_app"])
    for text in (PLAIN, SAFE, ASYNC):
        registry.register_yaml(text)
    async with WorkflowEngine(
        SQLitePersistenceProvider(str(tmp_path / "edge.db")), registry
    ) as engine:
        yield engine


async def stale_after_beat(engine, workflow_type: str):
    """Start a workflow, heartbeat it from a worker that then 'dies', and scan (threshold 0)."""
    wf = await engine.start_workflow(workflow_type, {})
    await engine.persistence.heartbeat_update(wf.id, "dead-worker", "Prepare")
    scanned = [
        b
        for b in await engine.persistence.scan_stale_heartbeats(0)
        if b["workflow_id"] == str(wf.id)
    ]
    assert len(scanned) == 1
    return wf, scanned


async def test_unchanged_zombie_is_marked_crashed_with_audit(engine):
    """A workflow unchanged since the scan becomes FAILED_WORKER_CRASH, with an audit row naming the worker."""
    wf, scanned = await stale_after_beat(engine, "Plain")
    assert await zombies.recover(engine, scanned) == {str(wf.id): "crashed"}
    wf = await engine.get_workflow(wf.id)
    assert wf.status == "FAILED_WORKER_CRASH"
    assert "dead-worker" in wf.error
    crash = [a for a in await engine.get_audit_log(wf.id) if a.event_type == "WORKER_CRASHED"]
    assert (
        crash
        and crash[0].new_status == "FAILED_WORKER_CRASH"
        and crash[0].details["worker_id"] == "dead-worker"
    )
    assert await engine.persistence.scan_stale_heartbeats(0) == []


async def test_workflow_changed_after_scan_is_not_marked_crashed(engine):
    """The race: the 'dead' worker was only slow and committed after the scan; recovery leaves it alone."""
    wf, scanned = await stale_after_beat(engine, "Plain")
    await engine.next_step(wf.id)  # the slow worker's commit lands between scan and recovery
    assert await zombies.recover(engine, scanned) == {str(wf.id): "changed"}
    wf = await engine.get_workflow(wf.id)
    assert wf.status == "ACTIVE" and wf.current_step == "Finish"


async def test_crash_commit_is_compare_and_set_on_the_scanned_version(engine):
    """Even past the pre-check, the crash commit carries the scanned version: a changed row is never overwritten."""
    wf, scanned = await stale_after_beat(engine, "Plain")
    row_at_scan = await engine.persistence.load_workflow(wf.id)
    await engine.next_step(wf.id)
    with pytest.raises(ConcurrentUpdateError):
        await zombies.mark_crashed(engine, row_at_scan, scanned[0])
    assert (await engine.get_workflow(wf.id)).status == "ACTIVE"


async def test_retry_safe_step_is_resumed_not_failed(engine):
    """A zombie stuck in a `retry_safe: true` step is run again and completes."""
    wf, scanned = await stale_after_beat(engine, "Safe")
    assert await zombies.recover(engine, scanned) == {str(wf.id): "resumed"}
    wf = await engine.get_workflow(wf.id)
    assert wf.status == "COMPLETED"
    assert wf.state.trail == ["prepare", "finish"]


async def test_pending_async_zombie_is_left_to_the_task_queue(engine):
    """A PENDING_ASYNC workflow with a stale heartbeat but a live task is not failed (the task gets requeued)."""
    wf = await engine.run((await engine.start_workflow("Waits", {"value": 2})).id)
    task = await engine.persistence.claim_next_task("dead-worker")
    await engine.persistence.heartbeat_update(wf.id, "dead-worker", "Double")
    scanned = await engine.persistence.scan_stale_heartbeats(0)
    assert await zombies.recover(engine, scanned) == {str(wf.id): "task"}
    assert (await engine.get_workflow(wf.id)).status == "PENDING_ASYNC"
    assert [t["task_id"] for t in await engine.persistence.requeue_stale_tasks(0)] == [
        task["task_id"]
    ]


async def test_pending_async_with_finished_task_is_reconciled(engine):
    """A task finished but the workflow missed it (crash in between): recovery applies the stored result."""
    wf = await engine.run((await engine.start_workflow("Waits", {"value": 2})).id)
    task = await engine.persistence.claim_next_task("dead-worker")
    await engine.persistence.heartbeat_update(wf.id, "dead-worker", "Double")
    assert await engine.persistence.finish_task(task["task_id"], "COMPLETED", {"doubled": 4})
    await zombies.recover(engine, await engine.persistence.scan_stale_heartbeats(0))
    wf = await engine.get_workflow(wf.id)
    assert wf.status == "COMPLETED" and wf.state.doubled == 4

"""Zombie recovery: workflows whose worker stopped heartbeating in the middle of a step.

``persistence.scan_stale_heartbeats`` lists them with the row version seen
by the scan. Recovery then decides, per workflow:

* PENDING_ASYNC: the task queue owns it (``requeue_stale_tasks`` retries the
  task, bounded); if the task has in fact finished, its outcome is applied.
* ACTIVE at a step marked ``retry_safe: true``: the step is run again.
* ACTIVE otherwise: FAILED_WORKER_CRASH with an audit row, committed with
  ``expected_version`` = the scanned version. If anything wrote the workflow
  after the scan (a live worker that was only slow), the commit raises
  ``ConcurrentUpdateError`` and the workflow is left alone.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ruvon_edge.engine import audit, tasks
from ruvon_edge.engine.runner import log_failed
from ruvon_edge.providers.persistence import (
    ConcurrentUpdateError,
    Transition,
    WorkflowNotFoundError,
)
from ruvon_edge.status import WorkflowStatus

if TYPE_CHECKING:
    from ruvon_edge.engine.core import Engine

S = WorkflowStatus
WORKER_CRASHED = "WORKER_CRASHED"

Resume = Callable[[str], Awaitable[Any]]


async def recover(
    engine: Engine, stale: list[dict[str, Any]], resume: Resume | None = None
) -> dict[str, str]:
    """Recover the scanned workflows; return ``{workflow_id: what was done}``."""
    done: dict[str, str] = {}
    for beat in stale:
        try:
            done[str(beat["workflow_id"])] = await recover_one(engine, beat, resume or engine.run)
        except (ConcurrentUpdateError, WorkflowNotFoundError):
            done[str(beat["workflow_id"])] = "changed"
    return done


async def recover_one(engine: Engine, beat: dict[str, Any], resume: Resume) -> str:
    """Recover one scanned workflow (see the module docstring); return what was done."""
    wid = str(beat["workflow_id"])
    row = await engine._load(wid)
    if row["version"] != beat["version"]:
        return "changed"
    if row["status"] == S.PENDING_ASYNC:
        await tasks.reconcile(engine, row)
        return "task"
    if row["status"] != S.ACTIVE:
        return "changed"
    step = engine.snapshots.definition_of(row).step(row["current_step"])
    if step.retry_safe:
        await resume(wid)
        return "resumed"
    await mark_crashed(engine, row, beat)
    return "crashed"


async def mark_crashed(engine: Engine, row: dict[str, Any], beat: dict[str, Any]) -> None:
    """Commit FAILED_WORKER_CRASH only if the row is still at the scanned version."""
    error = (
        f"worker {beat.get('worker_id')} stopped during step {row['current_step']!r} "
        f"(last heartbeat {beat.get('last_heartbeat')})"
    )
    failed = dict(row)
    failed["context"] = copy.deepcopy(row["context"])
    failed["status"] = S.FAILED_WORKER_CRASH
    failed["error"] = error
    failed["updated_at"] = failed["completed_at"] = audit.now_iso()
    event = audit.event(WORKER_CRASHED, row["current_step"], row["status"], S.FAILED_WORKER_CRASH,
                        error=error, worker_id=beat.get("worker_id"))  # fmt: skip
    await engine.persistence.commit(
        [Transition(workflow=failed, expected_version=beat["version"], audit=[event])]
    )
    log_failed(failed)
    await engine.notify(
        "on_workflow_status_changed", row["id"], row["status"], S.FAILED_WORKER_CRASH
    )
    await engine.notify("on_workflow_failed", row["id"], error)

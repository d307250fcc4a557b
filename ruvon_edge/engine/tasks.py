"""ASYNC tasks on the engine side: run a claimed task, apply its outcome to the waiting workflow.

A task's outcome is made durable on the task row first (``finish_task``);
the workflow then takes it in its next commit, which completes or fails the
step. A crash between the two leaves a finished task beside a PENDING_ASYNC
workflow: ``reconcile`` (run by ``serve`` at start and for stale
heartbeats) applies it later. A report for a task the workflow no longer
waits for (cancelled, retried, reported twice) changes nothing.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ruvon_edge.definition.state import with_mapping_access
from ruvon_edge.directives import WorkflowDirective
from ruvon_edge.engine.context import StepContext
from ruvon_edge.engine.invoke import call_step
from ruvon_edge.engine.runner import Runner, describe
from ruvon_edge.engine.steps.async_task import workflow_of_task
from ruvon_edge.providers.persistence import TaskNotFoundError
from ruvon_edge.status import WorkflowStatus

if TYPE_CHECKING:
    from ruvon_edge.engine.core import Engine

S = WorkflowStatus
LIVE = ("QUEUED", "RUNNING")
REMOTE_WAIT_SECONDS = 5.0  # a remote worker may report before the dispatching commit landed


def awaited_task(row: dict[str, Any]) -> str | None:
    """The id of the task a PENDING_ASYNC workflow waits for (None otherwise)."""
    if row["status"] != S.PENDING_ASYNC:
        return None
    return row["context"].get("steps", {}).get(row.get("current_step") or "", {}).get("task_id")


async def find_task(engine: Engine, task_id: str) -> dict[str, Any] | None:
    """The task row in the engine's store; None for tasks that live with a remote provider."""
    try:
        return await engine.persistence.get_task(task_id)
    except (TaskNotFoundError, NotImplementedError):
        return None


async def run_task(engine: Engine, task: dict[str, Any]) -> dict[str, Any]:
    """Run a claimed task's function with the workflow's state and a StepContext; then apply it."""
    row = await engine._load(task["workflow_id"])
    if awaited_task(row) != task["task_id"]:  # the workflow was cancelled or moved on
        await engine.persistence.cancel_task(task["task_id"])
        return row
    step = engine.snapshots.definition_of(row).step(task["step_name"])
    payload = task.get("payload") or {}
    fields = {
        k: v
        for k, v in (payload.get("context") or {}).items()
        if k in StepContext.__dataclass_fields__
    }
    context = StepContext(**{**fields, "workflow_id": row["id"], "workflow_type": row["workflow_type"],
                             "step_name": step.name, "attempt": int(task.get("attempts") or 1)})  # fmt: skip
    result: dict[str, Any] | None = None
    error: str | None = None
    try:
        function = engine.registry.resolve(task["function_path"])
        _, result, _ = await call_step(
            engine.execution, function, with_mapping_access(engine.snapshots.state_of(row)), context, {},
            retry=step.retry, timeout=step.timeout_seconds,
        )  # fmt: skip
    except (Exception, WorkflowDirective) as exc:  # the task's failure is the step's failure
        error = describe(exc)
    return await apply(engine, task["task_id"], task, result, error, row=row)


async def apply(
    engine: Engine,
    task_id: str,
    task: dict[str, Any] | None,
    result: dict | None,
    error: str | None,
    row: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Finish the task row (if still live), then let the waiting workflow take the outcome and run on.

    ``row`` is the workflow as the caller just read it (saves a read); if it
    changed meanwhile, the step's commit fails on the row version instead.
    """
    if task is not None and task["status"] in LIVE:
        status = "FAILED" if error is not None else "COMPLETED"
        if await engine.persistence.finish_task(task_id, status, result, error):
            task = {**task, "status": status, "result": result, "error": error}
        else:  # cancelled, or requeued and taken by another worker meanwhile
            task = await engine.persistence.get_task(task_id)
    if task is not None:
        if task["status"] in LIVE:
            return await engine._load(task["workflow_id"])
        result, error = task.get("result"), task.get("error")
        if task["status"] == "CANCELLED":
            error = "the task was cancelled"
        elif task["status"] == "FAILED" and not error:
            error = "the task failed"
    workflow_id = task["workflow_id"] if task is not None else workflow_of_task(task_id)
    deadline = asyncio.get_running_loop().time() + (REMOTE_WAIT_SECONDS if task is None else 0)
    while True:
        async with engine._lock(workflow_id):
            row = row if row is not None else await engine._load(workflow_id)
            if awaited_task(row) == task_id:
                row["context"]["steps"][row["current_step"]]["outcome"] = {
                    "result": result,
                    "error": error,
                }
                runner = Runner(engine, row)
                await runner.run_step(runner.definition.step(row["current_step"]), None)
                return await runner.run()
        if asyncio.get_running_loop().time() >= deadline or not _dispatching(row, task_id):
            return row  # a late or duplicate report: the workflow moved on
        row = None
        await asyncio.sleep(0.05)


def _dispatching(row: dict[str, Any], task_id: str) -> bool:
    """True while the commit that dispatched ``task_id`` may still be on its way (remote providers)."""
    step = task_id.split(":", 1)[-1].rsplit(":", 1)[0]
    return row["status"] == S.ACTIVE and step == row.get("current_step")


async def reconcile(engine: Engine, row: dict[str, Any]) -> dict[str, Any]:
    """Apply the finished task of a PENDING_ASYNC workflow whose completion was interrupted."""
    task_id = awaited_task(row)
    task = await find_task(engine, task_id) if task_id else None
    if task_id is None or task is None or task["status"] in LIVE:
        return row
    return await apply(engine, task_id, task, None, None)


async def cancel_awaited_task(engine: Engine, row: dict[str, Any]) -> bool:
    """Cancel the task a workflow waits for (when the workflow is cancelled); True if one was."""
    task_id = awaited_task(row)
    if task_id is None:
        return False
    try:
        return await engine.execution.cancel_task(task_id)
    except (TaskNotFoundError, NotImplementedError):
        return False

"""Persistence provider interface: three role interfaces composed into one.

``WorkflowStore`` (workflow rows, their audit trail, logs and metrics),
``TaskQueue`` (ASYNC-step tasks and worker heartbeats) and ``EdgeSyncStore``
(what the sync agent reads, acks and quarantines) each declare one role, so a
client depends only on the one it uses (the sync agent on ``EdgeSyncStore``).
``PersistenceProvider`` composes them under the contract's names, adding
``commit``, the one transaction that spans the workflow store and the queue.
The records and typed errors live in ``_persistence_records`` and are
re-exported here, their public home.

The abstract methods are the reference SDK's, exactly. The concrete ones
extend it and raise ``NotImplementedError`` unless a backend supports them:
``commit`` (the step transition -- workflow row compare-and-set on its
``version``, audit rows, logs, metrics and queued tasks -- in **one**
transaction, which the reference signatures cannot carry; its fallback for
third-party providers is built from the abstract methods and is not atomic),
the read-backs of logs, metrics and audit, the task queue helpers beside the
reference ``claim_next_task``, and the edge-only sync methods.

Workflow rows are plain dicts with these keys (stores may add their own):
``id, workflow_type, workflow_version, status, state, current_step, definition,
parent_id, idempotency_key, owner_id, data_region, saga_log, context, error,
version, sync_seq, created_at, updated_at, completed_at``. ``version`` and
``sync_seq`` belong to the store: every write bumps ``version``; the write that
first makes a workflow terminal gives it the next ``sync_seq``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self
from uuid import UUID

from ruvon_edge.providers._persistence_records import (
    AuditLogRecord,
    ConcurrentUpdateError,
    CorruptRecordError,
    DiskFullError,
    DuplicateIdempotencyKeyError,
    IdempotencyKeySyncedError,
    PersistenceError,
    QuarantinedRecord,
    TaskNotFoundError,
    Transition,
    UnreadableRecord,
    WorkflowNotFoundError,
    WorkflowRecord,
)

__all__ = [
    "PersistenceProvider",
    "StoreLifecycle",
    "WorkflowStore",
    "TaskQueue",
    "EdgeSyncStore",
    "AuditLogRecord",
    "ConcurrentUpdateError",
    "CorruptRecordError",
    "DiskFullError",
    "DuplicateIdempotencyKeyError",
    "IdempotencyKeySyncedError",
    "PersistenceError",
    "QuarantinedRecord",
    "TaskNotFoundError",
    "Transition",
    "UnreadableRecord",
    "WorkflowNotFoundError",
    "WorkflowRecord",
]


class StoreLifecycle(ABC):
    """Opening and closing a store; every role has it, and one object serves them all."""

    @abstractmethod
    async def initialize(self) -> None:
        """Open connections and create or migrate the schema."""

    @abstractmethod
    async def close(self) -> None:
        """Release every connection; safe to call twice."""

    async def __aenter__(self) -> Self:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class WorkflowStore(StoreLifecycle):
    """Workflow rows, their execution logs, metrics and audit trail."""

    @abstractmethod
    async def save_workflow(self, workflow_id: UUID, workflow_data: dict) -> None:
        """Insert or replace a workflow row (no version check; bumps ``version``)."""

    @abstractmethod
    async def load_workflow(self, workflow_id: UUID) -> dict:
        """Return the workflow row; raise ``WorkflowNotFoundError`` when absent."""

    @abstractmethod
    async def list_workflows(
        self,
        status: str | None = None,
        workflow_type: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[dict]:
        """Return workflow rows, newest first, filtered and paginated."""

    @abstractmethod
    async def log_execution(
        self, workflow_id, step_name, level, message, metadata: dict | None = None
    ) -> None:
        """Append an execution log line for a workflow."""

    @abstractmethod
    async def record_metric(
        self, workflow_id, step_name, metric_name, metric_value: float, metadata: dict | None = None
    ) -> None:
        """Append a numeric metric for a workflow step."""

    async def get_execution_logs(self, workflow_id: UUID | str) -> list[dict]:
        """Return a workflow's execution logs, oldest first."""
        raise NotImplementedError(f"{type(self).__name__} does not read back execution logs")

    async def get_metrics(self, workflow_id: UUID | str) -> list[dict]:
        """Return a workflow's metrics, oldest first."""
        raise NotImplementedError(f"{type(self).__name__} does not read back metrics")

    async def get_audit_logs(self, workflow_id: UUID | str) -> list[AuditLogRecord]:
        """Return a workflow's whole audit trail, oldest first (``show --audit``)."""
        raise NotImplementedError(f"{type(self).__name__} does not read back audit logs")


class TaskQueue(StoreLifecycle):
    """Tasks of ASYNC steps and the heartbeats of the workers running them."""

    @abstractmethod
    async def claim_next_task(self, worker_id: str) -> dict | None:
        """Atomically take the oldest queued task for ``worker_id``; None when the queue is empty."""

    async def enqueue_task(self, task: dict) -> str:
        """Queue a task (``task_id, workflow_id, step_name, function_path, payload, max_attempts``)."""
        raise NotImplementedError(f"{type(self).__name__} has no task queue")

    async def get_task(self, task_id: str) -> dict:
        """Return a task row; raise ``TaskNotFoundError`` when absent."""
        raise NotImplementedError(f"{type(self).__name__} has no task queue")

    async def finish_task(
        self, task_id: str, status: str, result: dict | None = None, error: str | None = None
    ) -> bool:
        """Move a RUNNING task to COMPLETED/FAILED; False if it was not running (e.g. cancelled)."""
        raise NotImplementedError(f"{type(self).__name__} has no task queue")

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a task that has not finished; True if it was cancelled."""
        raise NotImplementedError(f"{type(self).__name__} has no task queue")

    async def requeue_stale_tasks(self, stale_threshold_seconds: int) -> list[dict]:
        """Requeue RUNNING tasks whose worker went silent; fail those out of attempts. Return them."""
        raise NotImplementedError(f"{type(self).__name__} has no task queue")

    async def requeue_worker_tasks(self, worker_id: str) -> list[dict]:
        """Requeue (or fail, out of attempts) every RUNNING task of ``worker_id`` at once. Return them.

        For a worker restarted under the same id: its predecessor is known to be gone.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot requeue by worker")

    @abstractmethod
    async def heartbeat_update(
        self, workflow_id, worker_id, current_step, metadata: dict | None = None
    ) -> None:
        """Record that ``worker_id`` is alive and running ``current_step`` of the workflow."""

    @abstractmethod
    async def scan_stale_heartbeats(self, stale_threshold_seconds: int) -> list[dict]:
        """Return in-flight workflows (ACTIVE, PENDING_ASYNC) whose heartbeat is older than the threshold.

        Each dict has ``workflow_id, worker_id, current_step, last_heartbeat,
        metadata, status, version`` so recovery can compare-and-set.
        """


class EdgeSyncStore(StoreLifecycle):
    """What the sync agent needs: pending pages, acks, deletes, quarantine, its own cursors (edge-only).

    Reference names plus keyword-only companions where safety needs more than
    the reference signatures carry (the row version handed out, acks per audit
    row, quarantine).
    """

    async def get_pending_sync_workflows(
        self, limit: int, *, after_seq: int = 0
    ) -> list[WorkflowRecord | UnreadableRecord]:
        """Terminal, unsynced, unquarantined workflows with ``sync_seq > after_seq``, oldest first.

        A row that cannot be decoded comes back as an ``UnreadableRecord``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support edge sync")

    async def get_audit_logs_for_workflows(
        self, ids: list[str], limit_per_workflow: int = 50
    ) -> list[AuditLogRecord | UnreadableRecord]:
        """Not-yet-acked, unquarantined audit rows of these workflows, oldest first, in one query.

        A row that cannot be decoded comes back as an ``UnreadableRecord``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support edge sync")

    async def delete_synced_workflows(
        self, ids: list[str], *, versions: dict[str, int] | None = None
    ) -> int:
        """Settle acked workflows in one transaction; return how many left the pending set.

        Settled means deleted or, for a FAILED* workflow, kept out of the backlog for
        its retention period (a store may keep synced failures for inspection and retry).
        A workflow goes only if it is terminal, has no audit row left un-acked,
        and (when ``versions`` is given) its row version is still the one that
        was handed out. Children and other workflows are never touched.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support edge sync")

    async def ack_synced_audit_logs(self, audit_ids: list[str]) -> int:
        """Delete audit rows the cloud acked; return how many."""
        raise NotImplementedError(f"{type(self).__name__} does not support edge sync")

    async def quarantine_sync_record(
        self, kind: str, record_id: str, reason: str, *, limit_bytes: int | None = None
    ) -> None:
        """Keep a record out of the pending set (kind: workflow|audit); see ``QuarantinedRecord``."""
        raise NotImplementedError(f"{type(self).__name__} does not support edge sync")

    async def list_sync_quarantine(self) -> list[QuarantinedRecord]:
        """Every quarantined record, oldest first."""
        raise NotImplementedError(f"{type(self).__name__} does not support edge sync")

    async def requeue_sync_records(
        self, ids: list[str] | None = None, *, below_limit: int | None = None
    ) -> list[QuarantinedRecord]:
        """Release quarantined records (``ids`` None: all) so they are sent again; return them.

        ``below_limit`` releases only records quarantined for exceeding a byte
        limit smaller than it (the limit has since been raised).
        """
        raise NotImplementedError(f"{type(self).__name__} does not support edge sync")

    async def purge_sync_records(self, ids: list[str] | None = None) -> list[QuarantinedRecord]:
        """Delete quarantined records and their data for good (``ids`` None: all); return them.

        A purged workflow goes with its audit rows, logs, metrics and finished
        tasks; a purged audit row goes alone (its workflow is sent again).
        """
        raise NotImplementedError(f"{type(self).__name__} does not support edge sync")

    async def sync_backlog(self) -> dict:
        """Return ``{"pending": n, "oldest_pending_at": iso|None, "quarantined": n}``."""
        raise NotImplementedError(f"{type(self).__name__} does not support edge sync")

    async def get_edge_sync_state(self, key: str) -> str | None:
        """Read one of the sync agent's cursors or counters."""
        raise NotImplementedError(f"{type(self).__name__} does not support edge sync")

    async def set_edge_sync_state(self, key: str, value: str) -> None:
        """Write one of the sync agent's cursors or counters."""
        raise NotImplementedError(f"{type(self).__name__} does not support edge sync")


class PersistenceProvider(WorkflowStore, TaskQueue, EdgeSyncStore):
    """Where workflows, their audit trail, metrics, tasks and heartbeats live: every role in one store.

    ``commit`` is declared here, not on a role, because its transaction spans
    the workflow store and the task queue.
    """

    async def commit(self, transitions: list[Transition]) -> list[int]:
        """Write all ``transitions`` in one transaction; return each workflow's new version.

        Raises ``ConcurrentUpdateError`` (nothing written) when a row's version
        is not the expected one. This fallback, for providers that do not
        override it, is built from the reference methods and is NOT atomic.
        """
        versions = []
        for t in transitions:
            wid = t.workflow["id"]
            if t.expected_version is not None:
                current = (await self.load_workflow(wid)).get("version")
                if current != t.expected_version:
                    raise ConcurrentUpdateError(wid, t.expected_version, current)
            await self.save_workflow(wid, t.workflow)
            for a in t.audit:
                await self.log_execution(wid, a.get("step_name"), "AUDIT", a["event_type"], a)
            for log in t.logs:
                await self.log_execution(
                    wid, log.get("step_name"), log["level"], log["message"], log.get("metadata")
                )
            for m in t.metrics:
                await self.record_metric(
                    wid, m.get("step_name"), m["metric_name"], m["metric_value"], m.get("metadata")
                )
            for task in t.tasks:
                await self.enqueue_task(task)
            versions.append((await self.load_workflow(wid))["version"])
        return versions

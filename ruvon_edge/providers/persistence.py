"""Persistence provider interface, its records and its typed errors.

The abstract methods are the reference SDK's, exactly. Three groups of
concrete methods extend it, each raising ``NotImplementedError`` unless a
backend supports it:

* ``commit`` -- the atomic step transition the engine needs: the new
  workflow row (compare-and-set on its row ``version``), its audit rows,
  execution logs, metrics and queued tasks in **one** transaction. The
  reference signatures cannot carry that atomicity, so it is added here; a
  fallback built from the abstract methods exists for third-party providers
  (documented as not atomic).
* task queue helpers (``enqueue_task``, ``get_task``, ``finish_task`` ...)
  used by ASYNC steps and workers, beside the reference ``claim_next_task``.
* edge-only sync methods, with keyword-only companions where safety needs
  more than the reference signatures carry (the row version handed out, acks
  per audit row, quarantine).

Workflow rows are plain dicts with these keys (stores may add their own):
``id, workflow_type, workflow_version, status, state, current_step, definition,
parent_id, idempotency_key, owner_id, data_region, saga_log, context, error,
version, sync_seq, created_at, updated_at, completed_at``. ``version`` and
``sync_seq`` belong to the store: every write bumps ``version``; the write that
first makes a workflow terminal gives it the next ``sync_seq``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class PersistenceError(RuntimeError):
    """A storage operation failed (I/O, lock timeout, disk full, corrupt file)."""


class DiskFullError(PersistenceError):
    """The device's disk is full: new work is refused until sync frees space; nothing stored is lost."""


class WorkflowNotFoundError(PersistenceError, ValueError):
    """No workflow has that id."""

    def __init__(self, workflow_id: object) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"workflow {workflow_id} not found")


class DuplicateIdempotencyKeyError(PersistenceError):
    """A workflow with that idempotency key exists already; ``existing_id`` names it."""

    def __init__(self, key: str, existing_id: str | None = None) -> None:
        self.key = key
        self.existing_id = existing_id
        super().__init__(f"idempotency key {key!r} is already used by workflow {existing_id}")


class IdempotencyKeySyncedError(DuplicateIdempotencyKeyError):
    """The key belongs to a workflow that ended and has left the device (synced); nothing was started.

    The device remembers the key (a tombstone) for the store's idempotency
    retention after the workflow is deleted: ``existing_id``, ``workflow_type``,
    ``status`` (how it ended) and ``synced_at`` say which workflow it was.
    """

    def __init__(
        self, key: str, existing_id: str, workflow_type: str, status: str, synced_at: str
    ) -> None:
        super().__init__(key, existing_id)
        self.workflow_type = workflow_type
        self.status = status
        self.synced_at = synced_at
        self.args = (
            f"idempotency key {key!r} was used by workflow {existing_id} ({workflow_type}), which ended "
            f"{status} and was synced at {synced_at}; nothing was started",
        )

    def record(self) -> dict[str, str | bool]:
        """What the device remembers, as a dict (``--json`` output of a refused ``run``)."""
        return {"id": str(self.existing_id), "workflow_type": self.workflow_type, "status": self.status,
                "idempotency_key": self.key, "synced_at": self.synced_at, "on_device": False}  # fmt: skip


class CorruptRecordError(PersistenceError):
    """A stored workflow no longer decodes (e.g. a JSON column damaged on disk); ``reason`` says where."""

    def __init__(self, workflow_id: object, column: str, cause: Exception) -> None:
        self.workflow_id = workflow_id
        self.column = column
        self.reason = f"stored {column} is not valid JSON ({cause})"
        super().__init__(f"workflow {workflow_id}: {self.reason}")


class TaskNotFoundError(PersistenceError):
    """No task has that id."""

    def __init__(self, task_id: object) -> None:
        self.task_id = task_id
        super().__init__(f"task {task_id} not found")


class ConcurrentUpdateError(PersistenceError):
    """The workflow row changed since it was read (row version mismatch); nothing was written."""

    def __init__(self, workflow_id: object, expected: int | None, actual: int | None) -> None:
        self.workflow_id = workflow_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"workflow {workflow_id} was changed concurrently (expected version {expected}, found {actual})"
        )


class WorkflowRecord(BaseModel):
    """A workflow as handed to the sync agent (the wire protocol's workflow object)."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    id: str
    workflow_type: str
    workflow_version: str | None = None
    status: str
    state: dict[str, Any] = Field(default_factory=dict)
    current_step: str | None = None
    parent_id: str | None = None
    idempotency_key: str | None = None
    created_at: str
    updated_at: str
    completed_at: str | None = None
    sync_version: int = Field(description="row version when read; the delete predicate")
    sync_seq: int | None = Field(default=None, description="monotonic order of becoming terminal")


class AuditLogRecord(BaseModel):
    """One audit row: a status change or a step executed."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    audit_id: str
    workflow_id: str
    event_type: str
    step_name: str | None = None
    old_status: str | None = None
    new_status: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    recorded_at: str


class QuarantinedRecord(BaseModel):
    """A record held back from sync, why, and since when.

    ``limit_bytes`` is the batch byte limit a too-large record exceeded (None
    for any other reason), so that raising the limit releases it.
    """

    kind: str
    id: str
    workflow_id: str | None = None
    reason: str
    quarantined_at: str
    limit_bytes: int | None = None


class UnreadableRecord(BaseModel):
    """A stored row that cannot be decoded (bit rot, text that is not UTF-8 or JSON).

    Sync pages hand it out in place of the record, so that one bad row is
    quarantined with ``reason`` while the rest of its page goes on.
    """

    kind: str
    id: str
    workflow_id: str
    reason: str
    sync_seq: int | None = None


@dataclass
class Transition:
    """Everything one step transition writes, committed atomically by ``commit``.

    ``expected_version`` is the row version the engine read (``None`` creates
    the row, failing with ``DuplicateIdempotencyKeyError`` on a used key).
    Audit dicts hold ``event_type, step_name, old_status, new_status, details``;
    log dicts ``step_name, level, message, metadata``; metric dicts
    ``step_name, metric_name, metric_value, metadata``; task dicts are what
    ``enqueue_task`` takes. Committing a workflow also clears its heartbeat:
    the step that was in flight has finished.
    """

    workflow: dict[str, Any]
    expected_version: int | None
    audit: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)


class PersistenceProvider(ABC):
    """Where workflows, their audit trail, metrics, tasks and heartbeats live."""

    # -- lifecycle -----------------------------------------------------------------
    @abstractmethod
    async def initialize(self) -> None:
        """Open connections and create or migrate the schema."""

    @abstractmethod
    async def close(self) -> None:
        """Release every connection; safe to call twice."""

    async def __aenter__(self) -> PersistenceProvider:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- workflows (reference interface) -------------------------------------------
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

    @abstractmethod
    async def claim_next_task(self, worker_id: str) -> dict | None:
        """Atomically take the oldest queued task for ``worker_id``; None when the queue is empty."""

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

    # -- atomic transitions (extension) -----------------------------------------------
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
                await self.log_execution(wid, log.get("step_name"), log["level"], log["message"], log.get("metadata"))
            for m in t.metrics:
                await self.record_metric(wid, m.get("step_name"), m["metric_name"], m["metric_value"], m.get("metadata"))
            for task in t.tasks:
                await self.enqueue_task(task)
            versions.append((await self.load_workflow(wid))["version"])
        return versions

    async def get_execution_logs(self, workflow_id: UUID | str) -> list[dict]:
        """Return a workflow's execution logs, oldest first."""
        raise NotImplementedError(f"{type(self).__name__} does not read back execution logs")

    async def get_metrics(self, workflow_id: UUID | str) -> list[dict]:
        """Return a workflow's metrics, oldest first."""
        raise NotImplementedError(f"{type(self).__name__} does not read back metrics")

    async def get_audit_logs(self, workflow_id: UUID | str) -> list[AuditLogRecord]:
        """Return a workflow's whole audit trail, oldest first (``show --audit``)."""
        raise NotImplementedError(f"{type(self).__name__} does not read back audit logs")

    # -- task queue (extension) -----------------------------------------------------
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

    # -- edge-only: sync (reference names, plus keyword-only companions) ----------
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

    async def delete_synced_workflows(self, ids: list[str], *, versions: dict[str, int] | None = None) -> int:
        """Delete acked workflows in one transaction; return how many were deleted.

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

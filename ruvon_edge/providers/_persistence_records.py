"""The persistence interface's records and typed errors (re-exported by ``persistence``).

They live apart from the role interfaces so each module stays one concept;
import them from ``ruvon_edge.providers.persistence``, the public name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

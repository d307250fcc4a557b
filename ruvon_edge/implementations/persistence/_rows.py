"""Row shaping shared by the persistence backends: timestamps, JSON columns, store-owned bookkeeping.

Every backend stores the same encoded rows (JSON columns as text) and decodes
them the same way, so a workflow reads back identically whatever the store,
and the store-owned keys (``version``, ``sync_seq``, ``created_at``,
``updated_at``, ``completed_at``) follow one rule set, written once here.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from ruvon_edge.ids import time_ordered_id
from ruvon_edge.providers.persistence import AuditLogRecord, CorruptRecordError
from ruvon_edge.status import TERMINAL

WORKFLOW_COLUMNS: tuple[str, ...] = (
    "id", "workflow_type", "workflow_version", "status", "state", "current_step", "definition",
    "parent_id", "idempotency_key", "owner_id", "data_region", "saga_log", "context", "error",
    "extra", "version", "sync_seq", "created_at", "updated_at", "completed_at",
)  # fmt: skip
"""Stored columns; ``extra`` keeps keys a caller added beyond the documented ones."""

JSON_COLUMNS = frozenset({"state", "definition", "saga_log", "context", "error"})
_OWN_KEYS = frozenset(WORKFLOW_COLUMNS) - {"extra"}

TASK_STATUSES = frozenset({"QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"})
FINISHED_TASK_STATUSES = ("COMPLETED", "FAILED", "CANCELLED")
DEFAULT_MAX_ATTEMPTS = 3
WORKER_DIED = "worker died"


def now_iso() -> str:
    """Return the current UTC time as ISO-8601 with microseconds and ``Z`` (sorts as text)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_ago(seconds: float) -> str:
    """Return the UTC time ``seconds`` ago, in the same sortable format as ``now_iso``."""
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_default(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default)


def dumps(value: Any) -> str | None:
    """Encode a JSON column value; None stays NULL."""
    return None if value is None else _ENCODER.encode(value)


def loads(text: str | None) -> Any:
    """Decode a JSON column value; NULL is None."""
    return None if text is None else json.loads(text)


def _timestamp(value: Any) -> str | None:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def shape_workflow(
    workflow_id: str, data: dict[str, Any], existing: dict[str, Any] | None, now: str
) -> tuple[dict[str, Any], bool]:
    """Return the encoded row to store and whether it needs a fresh ``sync_seq``.

    ``existing`` holds the stored ``version, status, created_at, completed_at,
    sync_seq`` (None for a new row). Entering a terminal status stamps
    ``completed_at`` and asks for a new ``sync_seq``; staying terminal keeps
    both; leaving it (``retry``) clears both, so a re-failed workflow is
    queued for sync again after everything before it.
    """
    for key in ("workflow_type", "status"):
        if not data.get(key):
            raise ValueError(f"workflow {workflow_id}: {key!r} is required")
    row: dict[str, Any] = {k: data.get(k) for k in WORKFLOW_COLUMNS}
    row["id"] = workflow_id
    row["status"] = str(data["status"])
    for key in ("parent_id", "workflow_version"):
        if row[key] is not None:
            row[key] = str(row[key])
    if row["state"] is None:
        row["state"] = {}
    for key in JSON_COLUMNS:
        row[key] = dumps(row[key])
    extra = {k: v for k, v in data.items() if k not in _OWN_KEYS}
    row["extra"] = dumps(extra) if extra else None
    row["updated_at"] = now
    terminal = row["status"] in TERMINAL
    needs_seq = False
    if existing is None:
        row["version"] = 1
        row["created_at"] = _timestamp(data.get("created_at")) or now
        was_terminal = False
    else:
        row["version"] = existing["version"] + 1
        row["created_at"] = existing["created_at"]
        was_terminal = existing["status"] in TERMINAL
    if terminal and was_terminal and existing is not None:
        row["completed_at"] = existing["completed_at"]
        row["sync_seq"] = existing["sync_seq"]
        # A failure kept on the device after sync (sync_seq NULL) that is then cancelled is
        # news to the cloud: it is queued again.
        needs_seq = existing["sync_seq"] is None and existing["status"] != row["status"]
    elif terminal:  # a row created terminal (an imported one) keeps the time it really finished
        row["completed_at"] = (
            _timestamp(data.get("completed_at")) if existing is None else None
        ) or now
        row["sync_seq"] = None
        needs_seq = True
    else:
        row["completed_at"] = row["sync_seq"] = None
    return row, needs_seq


def decode_workflow(row: dict[str, Any]) -> dict[str, Any]:
    """Turn a stored row back into the workflow dict callers gave (plus store-owned keys).

    A JSON column that no longer decodes (bit rot, a hand edit) raises
    ``CorruptRecordError`` naming the workflow and the column.
    """
    out = dict(row)
    for key in (*JSON_COLUMNS, "extra"):
        try:
            out[key] = loads(out.get(key))
        except ValueError as exc:
            raise CorruptRecordError(row.get("id"), key, exc) from None
    extra = out.pop("extra", None)
    if extra:
        out.update(extra)
    return out


def decode_workflow_for_listing(row: dict[str, Any]) -> dict[str, Any]:
    """Like ``decode_workflow``, but a corrupt row is listed, flagged, instead of failing the list.

    Its plain columns (id, type, status, times) are kept, its JSON columns
    are None, and ``unreadable`` says which column is broken and how.
    """
    try:
        return decode_workflow(row)
    except CorruptRecordError as exc:
        flagged = {k: (None if k in JSON_COLUMNS else v) for k, v in row.items() if k != "extra"}
        flagged["unreadable"] = exc.reason
        return flagged


def audit_row(workflow_id: str, audit: dict[str, Any], now: str) -> dict[str, Any]:
    """Return an encoded audit row; a caller-supplied ``audit_id`` and ``recorded_at`` are kept."""
    return {
        "audit_id": str(audit.get("audit_id") or time_ordered_id()),
        "workflow_id": workflow_id,
        "event_type": audit["event_type"],
        "step_name": audit.get("step_name"),
        "old_status": audit.get("old_status"),
        "new_status": audit.get("new_status"),
        "details": dumps(audit.get("details") or {}),
        "recorded_at": audit.get("recorded_at") or now,
    }


def decode_audit(row: dict[str, Any]) -> AuditLogRecord:
    """Build the pydantic audit record from a stored row."""
    data = dict(row)
    data["details"] = loads(data.get("details")) or {}
    return AuditLogRecord(**data)


def log_row(workflow_id: str, log: dict[str, Any], now: str) -> dict[str, Any]:
    """Return an encoded execution-log row; a caller-supplied ``logged_at`` is kept."""
    return {
        "workflow_id": workflow_id,
        "step_name": log.get("step_name"),
        "level": str(log["level"]),
        "message": str(log["message"]),
        "metadata": dumps(log.get("metadata")),
        "logged_at": log.get("logged_at") or now,
    }


def metric_row(workflow_id: str, metric: dict[str, Any], now: str) -> dict[str, Any]:
    """Return an encoded metric row; a caller-supplied ``recorded_at`` is kept."""
    return {
        "workflow_id": workflow_id,
        "step_name": metric.get("step_name"),
        "metric_name": str(metric["metric_name"]),
        "metric_value": float(metric["metric_value"]),
        "metadata": dumps(metric.get("metadata")),
        "recorded_at": metric.get("recorded_at") or now,
    }


def decode_metadata_row(row: dict[str, Any]) -> dict[str, Any]:
    """Decode the ``metadata`` column of a log or metric row."""
    out = dict(row)
    out["metadata"] = loads(out.get("metadata"))
    return out


def task_row(task: dict[str, Any], now: str) -> dict[str, Any]:
    """Return an encoded, freshly QUEUED task row; ``task_id`` defaults to a uuid4."""
    return {
        "task_id": str(task.get("task_id") or uuid4()),
        "workflow_id": str(task["workflow_id"]) if task.get("workflow_id") is not None else None,
        "step_name": task.get("step_name"),
        "function_path": task.get("function_path"),
        "payload": dumps(task.get("payload") or {}),
        "status": "QUEUED",
        "attempts": 0,
        "max_attempts": int(task.get("max_attempts") or DEFAULT_MAX_ATTEMPTS),
        "worker_id": None,
        "claimed_at": None,
        "heartbeat_at": None,
        "result": None,
        "error": None,
        "created_at": now,
        "updated_at": now,
    }


def decode_task(row: dict[str, Any]) -> dict[str, Any]:
    """Decode a task row's JSON columns."""
    out = dict(row)
    out["payload"] = loads(out.get("payload"))
    out["result"] = loads(out.get("result"))
    return out


def check_finish_status(status: str) -> None:
    """Refuse a finishing status other than COMPLETED or FAILED."""
    if status not in ("COMPLETED", "FAILED"):
        raise ValueError(f"a task finishes as COMPLETED or FAILED, not {status!r}")


def check_quarantine_kind(kind: str) -> None:
    """Refuse a quarantine kind other than ``workflow`` or ``audit``."""
    if kind not in ("workflow", "audit"):
        raise ValueError(f"quarantine kind must be 'workflow' or 'audit', not {kind!r}")


def pending_record_fields(row: dict[str, Any]) -> dict[str, Any]:
    """Return the ``WorkflowRecord`` fields of a stored row (``sync_version`` = row version)."""
    return {
        "id": row["id"],
        "workflow_type": row["workflow_type"],
        "workflow_version": row["workflow_version"],
        "status": row["status"],
        "state": loads(row["state"]) or {},
        "current_step": row["current_step"],
        "parent_id": row["parent_id"],
        "idempotency_key": row["idempotency_key"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "completed_at": row["completed_at"],
        "sync_version": row["version"],
        "sync_seq": row["sync_seq"],
    }

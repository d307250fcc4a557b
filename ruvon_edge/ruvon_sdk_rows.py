"""Reference rows as Ruvon Edge rows: one ruvon-sdk workflow, audit row, log line or metric at a time.

Decisions (the reference's meaning kept, its representation changed):

* ids become canonical UUID text; the reference writes dashed or bare hex;
* the current step is a step name; old rows hold an integer index into the
  row's own ``steps_config``, read through it;
* an in-flight workflow gets the definition registered now (snapshot and
  hash, as ``start_workflow`` stores them); it is refused when that
  definition lacks its step or its state does not validate. Its saga stack
  becomes the saga log (steps with a compensation in that definition); a
  parent waiting on a child follows that child;
* PENDING_ASYNC becomes ACTIVE at the same step (the task dispatches again);
* times (``CURRENT_TIMESTAMP``: UTC, no zone) become the store's ISO form and
  are kept: creation, finish, audit, log and metric times;
* audit statuses are read from ``old_state``/``new_state`` (plain text or
  ``{"status": ...}``); the other columns go to ``details``. A reference
  audit row without an id gets one derived from its row, the same every run.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from ruvon_edge.definition.models import WorkflowDefinition
from ruvon_edge.definition.registry import WorkflowRegistry
from ruvon_edge.engine.snapshots import Snapshots
from ruvon_edge.ruvon_sdk_db import RuvonSdkDatabase, loads
from ruvon_edge.status import TERMINAL, WorkflowStatus

S = WorkflowStatus
SOURCE = "ruvon-sdk"
_CHILD_WAITS = frozenset({S.PENDING_SUB_WORKFLOW, S.WAITING_CHILD_HUMAN_INPUT})


class Refused(Exception):
    """One workflow cannot be imported; it stays in the old file."""


_AUDIT_KEYS = (
    "user_id",
    "worker_id",
    "execution_id",
    "state_diff",
    "decision_rationale",
    "metadata",
    "ip_address",
    "user_agent",
)
_NAMESPACE = uuid.UUID("5f0c3a52-8d1e-4c55-9a07-6b1f3f2de001")


def workflow_row(
    row: dict[str, Any], old: RuvonSdkDatabase, snapshots: Snapshots
) -> dict[str, Any]:
    """The workflow row to store for one reference row; ``Refused`` when it cannot live here."""
    wid = canonical_id(row["id"])
    if wid is None:
        raise Refused(f"id {row['id']!r} is not a UUID")
    status = str(row["status"])
    if status not in S.__members__:
        raise Refused(f"unknown status {status!r}")
    registry, workflow_type = snapshots.registry, str(row["workflow_type"])
    definition = registry.get(workflow_type) if workflow_type in registry else None
    state = loads(row["state"]) or {}
    if not isinstance(state, dict):
        raise Refused("its state is not a JSON object")
    step = _step_name(row)
    new: dict[str, Any] = {
        "id": wid, "workflow_type": workflow_type, "workflow_version": row["workflow_version"],
        "status": S.ACTIVE if status == S.PENDING_ASYNC else status, "state": state,
        "current_step": step, "definition": None, "parent_id": canonical_id(row["parent_execution_id"]),
        "idempotency_key": row["idempotency_key"] or None, "owner_id": None,
        "data_region": row["data_region"], "saga_log": [], "context": {}, "error": None,
        "created_at": _timestamp(row["created_at"]), "completed_at": None,
        "imported_from": {"engine": SOURCE, "status": status, "metadata": loads(row["metadata"]) or {}},
    }  # fmt: skip
    if definition is not None:
        new["definition"], new["context"]["definition_hash"] = snapshots.store(definition)
    if status in TERMINAL:
        new["completed_at"] = _timestamp(row["completed_at"] or row["updated_at"])
        return new
    if definition is None:
        raise Refused(
            f"workflow type {workflow_type!r} is not registered (give its definition with --definitions)"
        )
    _check_resumable(row, new, definition, snapshots.registry)
    if status in _CHILD_WAITS:
        new["context"]["steps"] = {step: _followed_child(row, old)}
    return new


def _check_resumable(
    row: dict[str, Any],
    new: dict[str, Any],
    definition: WorkflowDefinition,
    registry: WorkflowRegistry,
) -> None:
    step = new["current_step"]
    names = {s.name for s in definition.steps}
    if step not in names:
        raise Refused(
            f"its current step {step!r} is not in the registered definition of {definition.workflow_type}"
        )
    model = registry.state_model(definition)
    try:
        model.model_validate(new["state"])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "state"
        raise Refused(f"its state does not fit {model.__name__}: {where}: {first['msg']}") from None
    stack = loads(row["completed_steps_stack"]) or []
    new["saga_log"] = [
        {"step": name, "function": definition.step(name).compensate_function}
        for name in (e.get("step_name") for e in stack if isinstance(e, dict))
        if name in names and definition.step(name).compensate_function
    ]


def _followed_child(row: dict[str, Any], old: RuvonSdkDatabase) -> dict[str, str]:
    child = row["blocked_on_child_id"]
    child_type = old.workflow_type_of(child) if child else None
    child_id = canonical_id(child)
    if child_id is None or child_type is None:
        raise Refused(f"it waits on child workflow {child!r}, which the file does not hold")
    return {"child_id": child_id, "child_type": child_type}


def _step_name(row: dict[str, Any]) -> str | None:
    """The current step's name; the reference's older rows hold its index into ``steps_config``."""
    step = row["current_step"]
    if isinstance(step, str) and not step.isdigit():
        return step or None
    if step is None or step == "":
        return None
    steps = loads(row["steps_config"]) or []
    index = int(step)
    if 0 <= index < len(steps) and isinstance(steps[index], dict):
        return steps[index].get("name")
    return None  # past the last step: the reference's way of saying "finished"


def audit_row(a: dict[str, Any]) -> dict[str, Any]:
    """One reference audit row as ``Transition.audit`` takes it."""
    audit_id = a["audit_id"] or str(
        uuid.uuid5(_NAMESPACE, f"{a['workflow_id']}:audit:{a['source_rowid']}")
    )
    details = {k: loads(a[k]) for k in _AUDIT_KEYS if a.get(k) not in (None, "", "{}")}
    old_status, new_status = _status_in(a["old_state"]), _status_in(a["new_state"])
    for key, status in (("old_state", old_status), ("new_state", new_status)):
        if status is None and a[key] is not None:
            details[key] = loads(a[key])
    return {
        "audit_id": audit_id,
        "event_type": a["event_type"],
        "step_name": a["step_name"],
        "old_status": old_status,
        "new_status": new_status,
        "details": {"source": SOURCE, **details},
        "recorded_at": _timestamp(a["recorded_at"]),
    }


@lru_cache(maxsize=1024)  # a handful of distinct texts, repeated on every row
def _status_in(value: Any) -> str | None:
    """The reference writes a status as plain text or as ``{"status": ...}``."""
    decoded = loads(value)
    if isinstance(decoded, dict):
        decoded = decoded.get("status")
    return decoded if isinstance(decoded, str) and decoded in S.__members__ else None


def log_row(g: dict[str, Any]) -> dict[str, Any]:
    """One reference execution log line as ``Transition.logs`` takes it."""
    return {
        "step_name": g["step_name"],
        "level": g["log_level"],
        "message": g["message"],
        "metadata": loads(g["metadata"]),
        "logged_at": _timestamp(g["logged_at"]),
    }


def metric_row(m: dict[str, Any]) -> dict[str, Any]:
    """One reference metric as ``Transition.metrics`` takes it (unit and tags in its metadata)."""
    metadata = {k: loads(m[k]) for k in ("unit", "tags") if m.get(k) not in (None, "", "{}")}
    return {
        "step_name": m["step_name"],
        "metric_name": m["metric_name"],
        "metric_value": m["metric_value"],
        "metadata": metadata or None,
        "recorded_at": _timestamp(m["recorded_at"]),
    }


def canonical_id(value: Any) -> str | None:
    """The reference's id as canonical UUID text (it writes dashed or bare hex); None if not a UUID."""
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None


@lru_cache(maxsize=4096)  # whole seconds: rows of one workflow share them
def _timestamp(value: Any) -> str | None:
    """The reference's ``CURRENT_TIMESTAMP`` text (UTC, no zone) in the store's sortable ISO form."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

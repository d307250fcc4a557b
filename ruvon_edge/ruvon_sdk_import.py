"""Switch a device over: copy a ruvon-sdk database into Ruvon Edge's store (``import-ruvon-db``).

What is copied, from the old file (opened read-only, never changed) into the
store through its ``PersistenceProvider``:

* every workflow, keeping its id (canonical UUID text), type, version, state,
  parent, idempotency key, data region and creation time. Terminal ones keep
  their status and the time they finished and join the sync queue in the
  order they finished, so ``ruvon-sync`` ships them. In-flight ones resume
  under this engine at the reference's current step (its name; an old
  integer index is read through the row's own ``steps_config``) with the
  definition registered NOW, whose snapshot they keep from then on. The
  reference's saga stack becomes the saga log (steps with a compensation in
  the registered definition); a parent waiting on a child follows that child.
  PENDING_ASYNC is imported ACTIVE at the same step: the reference's task
  (handed to its broker) cannot report to this engine, so the step
  dispatches its task again (at-least-once, as any ASYNC retry).
* audit rows (reference audit ids kept, or derived from the row when it has
  none; times kept; statuses read from ``old_state``/``new_state``; the
  other columns in ``details``) plus one ``WORKFLOW_IMPORTED`` row each,
  execution log lines and metrics (times kept);
* ``edge_sync_state`` keys, under the prefix ``ruvon-sdk:`` so the reference
  agent's cursors never steer ``ruvon-sync``; a key already there is kept.

Each batch of workflows, with all their rows, is ONE ``commit``. Running the
import again imports nothing twice: a workflow already in the store, or
imported earlier and since synced and deleted (a ledger key per imported
workflow in ``edge_sync_state``), is skipped. A workflow that cannot resume
here (its type is not registered, its step or state does not fit the
registered definition, its idempotency key is taken) is refused with a
reason and stays in the old file; the others are imported.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ruvon_edge.definition.models import WorkflowDefinition
from ruvon_edge.definition.registry import WorkflowRegistry
from ruvon_edge.engine.snapshots import Snapshots
from ruvon_edge.providers.persistence import (
    DuplicateIdempotencyKeyError,
    PersistenceProvider,
    Transition,
    WorkflowNotFoundError,
)
from ruvon_edge.ruvon_sdk_db import RuvonSdkDatabase, loads
from ruvon_edge.status import TERMINAL, WorkflowStatus

S = WorkflowStatus
SOURCE = "ruvon-sdk"
STATE_PREFIX = "ruvon-sdk:"
"""Prefix of the reference agent's ``edge_sync_state`` keys once imported."""
LEDGER_PREFIX = "imported:ruvon-sdk:"
"""``edge_sync_state`` key of each imported workflow: it outlives the workflow's deletion after sync."""
WORKFLOW_IMPORTED = "WORKFLOW_IMPORTED"
_CHILD_WAITS = frozenset({S.PENDING_SUB_WORKFLOW, S.WAITING_CHILD_HUMAN_INPUT})
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


class Refused(Exception):
    """One workflow cannot be imported; it stays in the old file."""


@dataclass
class ImportReport:
    """What one run did; ``imported`` counts workflows by their status in the old file."""

    source: str
    workflows_in_file: int = 0
    imported: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    refused: list[dict[str, str]] = field(default_factory=list)
    audit_logs: int = 0
    execution_logs: int = 0
    metrics: int = 0
    sync_state_keys: int = 0
    batches: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as one JSON-ready document."""
        return {
            "source": self.source,
            "workflows_in_file": self.workflows_in_file,
            "imported": dict(sorted(self.imported.items())),
            "imported_total": sum(self.imported.values()),
            "skipped_already_imported": self.skipped,
            "refused": self.refused,
            "audit_logs": self.audit_logs,
            "execution_logs": self.execution_logs,
            "metrics": self.metrics,
            "sync_state_keys": self.sync_state_keys,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
        }

    def text(self) -> str:
        """The report for a terminal: counts per status, then skipped and refused."""
        total = sum(self.imported.values())
        lines = [
            f"imported {total} of {self.workflows_in_file} workflows from {self.source} "
            f"in {self.batches} batch(es), {self.seconds:.2f} s"
        ]
        for status, n in sorted(self.imported.items()):
            what = "pending sync" if status in TERMINAL else "resumes here"
            if status == S.PENDING_ASYNC:
                what = "resumes here ACTIVE: its task is dispatched again"
            lines.append(f"  {status:<26} {n:>6}  {what}")
        lines.append(
            f"audit rows {self.audit_logs}, execution logs {self.execution_logs}, "
            f"metrics {self.metrics}, sync state keys {self.sync_state_keys} (as {STATE_PREFIX}KEY)"
        )
        lines.append(f"skipped (already imported): {self.skipped}")
        lines.append(f"refused: {len(self.refused)}")
        lines += [f"  {r['id']} ({r['status']}): {r['reason']}" for r in self.refused]
        return "\n".join(lines)


async def import_ruvon_db(
    old: RuvonSdkDatabase,
    persistence: PersistenceProvider,
    registry: WorkflowRegistry,
    *,
    batch_size: int = 200,
) -> ImportReport:
    """Copy the open reference database into ``persistence``; return what was done.

    Opening ``RuvonSdkDatabase(path)`` is what refuses a file that is not a
    reference database of a known schema, before any store is touched.
    """
    started = time.perf_counter()
    snapshots = Snapshots(registry)
    report = ImportReport(source=old.path, workflows_in_file=old.count_workflows())
    for rows in old.workflow_batches(batch_size):
        await _import_batch(old, rows, persistence, snapshots, report)
    for key, value in old.sync_state().items():
        if await persistence.get_edge_sync_state(STATE_PREFIX + key) is None:
            await persistence.set_edge_sync_state(STATE_PREFIX + key, value)
            report.sync_state_keys += 1
    report.seconds = time.perf_counter() - started
    return report


async def _import_batch(
    old: RuvonSdkDatabase,
    rows: list[dict[str, Any]],
    persistence: PersistenceProvider,
    snapshots: Snapshots,
    report: ImportReport,
) -> None:
    done = await asyncio.gather(*(_already_imported(persistence, r["id"]) for r in rows))
    workflows: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # old id -> (old row, new row)
    for row, seen in zip(rows, done, strict=True):
        if seen:
            report.skipped += 1
            continue
        try:
            workflows[row["id"]] = (row, _workflow(row, old, snapshots))
        except Refused as refused:
            report.refused.append(
                {"id": str(row["id"]), "status": str(row["status"]), "reason": str(refused)}
            )
    if not workflows:
        return
    ids = list(workflows)
    audit, logs, metrics = (
        _by_workflow(found)
        for found in (old.audit_rows(ids), old.log_rows(ids), old.metric_rows(ids))
    )
    transitions: dict[str, Transition] = {}
    for old_id, (row, new) in workflows.items():
        errors = [g["message"] for g in logs[old_id] if g.get("log_level") == "ERROR"]
        if new["status"] in TERMINAL and new["status"] != S.COMPLETED and errors:
            new["error"] = errors[-1]
        imported = {
            "event_type": WORKFLOW_IMPORTED,
            "step_name": new["current_step"],
            "old_status": row["status"],
            "new_status": new["status"],
            "details": {"source": SOURCE, "file": old.path},
        }
        transitions[old_id] = Transition(
            workflow=new,
            expected_version=None,
            audit=[*(_audit(a) for a in audit[old_id]), imported],
            logs=[_log(g) for g in logs[old_id]],
            metrics=[_metric(m) for m in metrics[old_id]],
        )
    await _commit(persistence, transitions, workflows, report)
    for old_id, t in transitions.items():
        report.imported[str(workflows[old_id][0]["status"])] += 1
        report.audit_logs += len(t.audit) - 1
        report.execution_logs += len(t.logs)
        report.metrics += len(t.metrics)
    stamp = datetime.now(UTC).isoformat()
    await asyncio.gather(
        *(
            persistence.set_edge_sync_state(LEDGER_PREFIX + t.workflow["id"], stamp)
            for t in transitions.values()
        )
    )


async def _commit(
    persistence: PersistenceProvider,
    transitions: dict[str, Transition],
    workflows: dict[str, tuple[dict[str, Any], dict[str, Any]]],
    report: ImportReport,
) -> None:
    """Commit the batch in one transaction; a workflow whose idempotency key is taken is refused alone."""
    while transitions:
        try:
            await persistence.commit(list(transitions.values()))
            report.batches += 1
            return
        except DuplicateIdempotencyKeyError as dup:
            clash = next(
                (k for k, t in transitions.items() if t.workflow["idempotency_key"] == dup.key),
                None,
            )
            if clash is None:
                raise
            del transitions[clash]
            row = workflows[clash][0]
            reason = f"idempotency key {dup.key!r} is already used by workflow {dup.existing_id}"
            report.refused.append(
                {"id": str(row["id"]), "status": str(row["status"]), "reason": reason}
            )


async def _already_imported(persistence: PersistenceProvider, old_id: Any) -> bool:
    wid = _canonical_id(old_id)
    if wid is None:
        return False  # refused with its reason later
    if await persistence.get_edge_sync_state(LEDGER_PREFIX + wid) is not None:
        return True
    try:
        await persistence.load_workflow(wid)  # type: ignore[arg-type]  # providers take the str form
    except WorkflowNotFoundError:
        return False
    return True


def _workflow(row: dict[str, Any], old: RuvonSdkDatabase, snapshots: Snapshots) -> dict[str, Any]:
    """The workflow row to store for one reference row; ``Refused`` when it cannot live here."""
    wid = _canonical_id(row["id"])
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
        "current_step": step, "definition": None, "parent_id": _canonical_id(row["parent_execution_id"]),
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
    child_id = _canonical_id(child)
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


def _audit(a: dict[str, Any]) -> dict[str, Any]:
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


def _status_in(value: Any) -> str | None:
    """The reference writes a status as plain text or as ``{"status": ...}``."""
    decoded = loads(value)
    if isinstance(decoded, dict):
        decoded = decoded.get("status")
    return decoded if isinstance(decoded, str) and decoded in S.__members__ else None


def _log(g: dict[str, Any]) -> dict[str, Any]:
    return {
        "step_name": g["step_name"],
        "level": g["log_level"],
        "message": g["message"],
        "metadata": loads(g["metadata"]),
        "logged_at": _timestamp(g["logged_at"]),
    }


def _metric(m: dict[str, Any]) -> dict[str, Any]:
    metadata = {k: loads(m[k]) for k in ("unit", "tags") if m.get(k) not in (None, "", "{}")}
    return {
        "step_name": m["step_name"],
        "metric_name": m["metric_name"],
        "metric_value": m["metric_value"],
        "metadata": metadata or None,
        "recorded_at": _timestamp(m["recorded_at"]),
    }


def _by_workflow(rows: list[dict[str, Any]]) -> defaultdict[str, list[dict[str, Any]]]:
    grouped: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["workflow_id"]].append(row)
    return grouped


def _canonical_id(value: Any) -> str | None:
    """The reference's id as canonical UUID text (it writes dashed or bare hex); None if not a UUID."""
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None


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

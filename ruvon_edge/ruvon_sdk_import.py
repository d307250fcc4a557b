"""Switch a device over: copy a ruvon-sdk database into Ruvon Edge's store (``import-ruvon-db``).

What is copied, from the old file (opened read-only, never changed) into the
store through its ``PersistenceProvider``:

* every workflow (``ruvon_sdk_rows`` says how each is mapped). Terminal
  ones keep their status and join the sync queue in the order they
  finished, so ``ruvon-sync`` ships them; in-flight ones resume under this
  engine at the reference's current step with the definition registered now;
* its audit rows, plus one ``WORKFLOW_IMPORTED`` row, its execution log
  lines and its metrics;
* ``edge_sync_state`` keys, under the prefix ``ruvon-sdk:`` so the reference
  agent's cursors never steer ``ruvon-sync``; a key already there is kept.

Each batch of workflows, with all their rows, is ONE ``commit``. Running the
import again imports nothing twice: a workflow already in the store, or
imported earlier and since synced and deleted, is skipped. The latter is
known by a ledger key per imported workflow in ``edge_sync_state``, written
right after its batch commits (the provider cannot put it in the same
transaction: only a crash in that gap, then a sync deleting the workflow
before the rerun, could bring one back). A workflow that cannot resume here
(its type is not registered, its step or state does not fit the registered
definition, its idempotency key is taken) is refused with a reason and stays
in the old file; the others are imported.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ruvon_edge.definition.registry import WorkflowRegistry
from ruvon_edge.engine.snapshots import Snapshots
from ruvon_edge.providers.persistence import (
    DuplicateIdempotencyKeyError,
    PersistenceProvider,
    Transition,
    WorkflowNotFoundError,
)
from ruvon_edge.ruvon_sdk_db import RuvonSdkDatabase
from ruvon_edge.ruvon_sdk_rows import (
    SOURCE,
    Refused,
    audit_row,
    canonical_id,
    log_row,
    metric_row,
    workflow_row,
)
from ruvon_edge.status import TERMINAL, WorkflowStatus

S = WorkflowStatus
STATE_PREFIX = "ruvon-sdk:"
"""Prefix of the reference agent's ``edge_sync_state`` keys once imported."""
LEDGER_PREFIX = "imported:ruvon-sdk:"
"""``edge_sync_state`` key of each imported workflow: it outlives the workflow's deletion after sync."""
WORKFLOW_IMPORTED = "WORKFLOW_IMPORTED"


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
            workflows[row["id"]] = (row, workflow_row(row, old, snapshots))
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
            audit=[*(audit_row(a) for a in audit[old_id]), imported],
            logs=[log_row(g) for g in logs[old_id]],
            metrics=[metric_row(m) for m in metrics[old_id]],
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
    wid = canonical_id(old_id)
    if wid is None:
        return False  # refused with its reason later
    if await persistence.get_edge_sync_state(LEDGER_PREFIX + wid) is not None:
        return True
    try:
        await persistence.load_workflow(wid)  # type: ignore[arg-type]  # providers take the str form
    except WorkflowNotFoundError:
        return False
    return True


def _by_workflow(rows: list[dict[str, Any]]) -> defaultdict[str, list[dict[str, Any]]]:
    grouped: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["workflow_id"]].append(row)
    return grouped

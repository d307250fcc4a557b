"""An in-process store with the SQLite store's behaviour, for tests and embedders.

Rows are kept encoded exactly as SQLite keeps them (``_rows``), so values
round-trip the same way and no caller can mutate stored state by reference.
Every method runs to the end without awaiting, so each is atomic on the event
loop; ``commit`` checks every transition before it changes anything.
"""

from __future__ import annotations

import itertools
from typing import Any
from uuid import UUID

from ruvon_edge.providers.persistence import (
    AuditLogRecord,
    ConcurrentUpdateError,
    DuplicateIdempotencyKeyError,
    IdempotencyKeySyncedError,
    PersistenceError,
    PersistenceProvider,
    QuarantinedRecord,
    TaskNotFoundError,
    Transition,
    UnreadableRecord,
    WorkflowNotFoundError,
    WorkflowRecord,
)
from ruvon_edge.status import FAILED, TERMINAL

from . import _rows
from ._retention import DAY, Retention


class MemoryPersistenceProvider(PersistenceProvider):
    """Everything the SQLite store does, in dicts; nothing survives the process."""

    def __init__(
        self,
        *,
        failed_retention_seconds: float = 7 * DAY,
        idempotency_retention_seconds: float = 30 * DAY,
    ) -> None:
        self.retention = Retention(failed_retention_seconds, idempotency_retention_seconds)
        self._tombstones: dict[
            str, tuple[str, str, str, str, str]
        ] = {}  # key -> id, type, status, at, expiry
        self._workflows: dict[str, dict[str, Any]] = {}  # insertion order = rowid order
        self._keys: dict[str, str] = {}
        self._audit: dict[int, dict[str, Any]] = {}
        self._audit_ids: dict[str, int] = {}
        self._logs: list[dict[str, Any]] = []
        self._metrics: list[dict[str, Any]] = []
        self._tasks: dict[str, dict[str, Any]] = {}
        self._heartbeats: dict[str, dict[str, Any]] = {}
        self._sync_state: dict[str, str] = {}
        self._quarantine: dict[tuple[str, str], dict[str, Any]] = {}
        self._seq = itertools.count(1)
        self._last_sync_seq = 0

    async def initialize(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to release; the data stays until the object goes."""

    # -- workflows -----------------------------------------------------------------
    def _stage(
        self, wid: str, data: dict, expected: Any, cas: bool, staged: dict, seqs: list, now: str
    ) -> dict:
        """Compute the new row for ``wid`` against ``staged`` rows, or raise; change nothing."""
        current = staged[wid] if wid in staged else self._workflows.get(wid)
        if cas:
            actual = current["version"] if current else None
            if actual != expected:
                raise ConcurrentUpdateError(wid, expected, actual)
        row, needs_seq = _rows.shape_workflow(wid, data, current, now)
        if needs_seq:
            row["sync_seq"] = self._last_sync_seq + len(seqs) + 1
            seqs.append(row["sync_seq"])
        key = row["idempotency_key"]
        if current is None and key in self._tombstones:
            wid_, wtype, status, at, expires = self._tombstones[key]
            if expires > now:
                raise IdempotencyKeySyncedError(key, wid_, wtype, status, at)
        if key is not None:
            holders = {i for i, r in staged.items() if r["idempotency_key"] == key}
            holder = self._keys.get(key)
            if holder is not None and holder not in staged:
                holders.add(holder)
            holders.discard(wid)
            if holders:
                raise DuplicateIdempotencyKeyError(key, holders.pop())
        staged[wid] = row
        return row

    def _apply(self, staged: dict[str, dict], seqs: list[int]) -> None:
        if seqs:
            self._last_sync_seq = seqs[-1]
        for wid, row in staged.items():
            old = self._workflows.get(wid)
            if old is not None and old["idempotency_key"] is not None:
                self._keys.pop(old["idempotency_key"], None)
            if row["idempotency_key"] is not None:
                self._keys[row["idempotency_key"]] = wid
            self._workflows[wid] = row

    async def save_workflow(self, workflow_id: UUID, workflow_data: dict) -> None:
        staged: dict[str, dict] = {}
        seqs: list[int] = []
        self._stage(str(workflow_id), workflow_data, None, False, staged, seqs, _rows.now_iso())
        self._apply(staged, seqs)

    async def commit(self, transitions: list[Transition]) -> list[int]:
        now = _rows.now_iso()
        staged: dict[str, dict] = {}
        seqs: list[int] = []
        versions = []
        extras = []  # everything encoded before the first change, so a bad value changes nothing
        for t in transitions:
            wid = str(t.workflow["id"])
            versions.append(
                self._stage(wid, t.workflow, t.expected_version, True, staged, seqs, now)["version"]
            )
            audit = [_rows.audit_row(wid, a, now) for a in t.audit]
            logs = [_rows.log_row(wid, g, now) for g in t.logs]
            metrics = [_rows.metric_row(wid, m, now) for m in t.metrics]
            tasks = [_rows.task_row({"workflow_id": wid, **task}, now) for task in t.tasks]
            extras.append((wid, audit, logs, metrics, tasks))
        audit_ids = [a["audit_id"] for _, audit, *_ in extras for a in audit]
        clash = next((a for a in audit_ids if a in self._audit_ids), None)
        if clash is not None or len(set(audit_ids)) != len(audit_ids):
            raise PersistenceError(f"memory store: audit id {clash} is used already")
        self._apply(staged, seqs)
        for wid, audit, logs, metrics, tasks in extras:
            for row in audit:
                self._add_audit(row)
            self._logs.extend(logs)
            self._metrics.extend(metrics)
            for row in tasks:
                self._tasks.setdefault(row["task_id"], row)
            self._heartbeats.pop(wid, None)
        return versions

    def _add_audit(self, row: dict) -> None:
        seq = next(self._seq)
        self._audit[seq] = {"seq": seq, **row}
        self._audit_ids[row["audit_id"]] = seq

    async def load_workflow(self, workflow_id: UUID) -> dict:
        row = self._workflows.get(str(workflow_id))
        if row is None:
            raise WorkflowNotFoundError(str(workflow_id))
        return _rows.decode_workflow(row)

    async def list_workflows(
        self, status=None, workflow_type=None, limit: int = 20, offset: int = 0
    ) -> list[dict]:
        rows = [
            (r["created_at"], pos, r)
            for pos, r in enumerate(self._workflows.values())
            if (status is None or r["status"] == str(status))
            and (workflow_type is None or r["workflow_type"] == workflow_type)
        ]
        rows.sort(key=lambda x: (x[0], x[1]), reverse=True)
        return [_rows.decode_workflow_for_listing(r) for _, _, r in rows[offset : offset + limit]]

    async def log_execution(
        self, workflow_id, step_name, level, message, metadata: dict | None = None
    ) -> None:
        log = {"step_name": step_name, "level": level, "message": message, "metadata": metadata}
        self._logs.append(_rows.log_row(str(workflow_id), log, _rows.now_iso()))

    async def record_metric(self, workflow_id, step_name, metric_name, metric_value: float,
                            metadata: dict | None = None) -> None:  # fmt: skip
        metric = {"step_name": step_name, "metric_name": metric_name, "metric_value": metric_value,
                  "metadata": metadata}  # fmt: skip
        self._metrics.append(_rows.metric_row(str(workflow_id), metric, _rows.now_iso()))

    async def get_execution_logs(self, workflow_id) -> list[dict]:
        return self._numbered(self._logs, str(workflow_id))

    async def get_metrics(self, workflow_id) -> list[dict]:
        return self._numbered(self._metrics, str(workflow_id))

    @staticmethod
    def _numbered(rows: list[dict], wid: str) -> list[dict]:
        return [
            _rows.decode_metadata_row({"id": i, **r})
            for i, r in enumerate(rows, 1)
            if r["workflow_id"] == wid
        ]

    async def get_audit_logs(self, workflow_id) -> list[AuditLogRecord]:
        wid = str(workflow_id)
        return [_rows.decode_audit(r) for r in self._audit.values() if r["workflow_id"] == wid]

    async def heartbeat_update(
        self, workflow_id, worker_id, current_step, metadata: dict | None = None
    ) -> None:
        """Record a heartbeat; also refreshes ``heartbeat_at`` of this worker's RUNNING tasks of the workflow."""
        wid, now = str(workflow_id), _rows.now_iso()
        self._heartbeats[wid] = {"workflow_id": wid, "worker_id": worker_id, "current_step": current_step,
                                 "metadata": _rows.dumps(metadata), "last_heartbeat": now}  # fmt: skip
        for t in self._tasks.values():
            if t["workflow_id"] == wid and t["worker_id"] == worker_id and t["status"] == "RUNNING":
                t["heartbeat_at"] = now

    async def scan_stale_heartbeats(self, stale_threshold_seconds: int) -> list[dict]:
        cutoff = _rows.iso_ago(stale_threshold_seconds)
        out = []
        for hb in sorted(self._heartbeats.values(), key=lambda h: h["last_heartbeat"]):
            wf = self._workflows.get(hb["workflow_id"])
            if wf and hb["last_heartbeat"] < cutoff and wf["status"] in ("ACTIVE", "PENDING_ASYNC"):
                out.append(
                    _rows.decode_metadata_row(
                        {**hb, "status": wf["status"], "version": wf["version"]}
                    )
                )
        return out

    # -- task queue ----------------------------------------------------------------

    def _task(self, task_id: str) -> dict:
        row = self._tasks.get(str(task_id))
        if row is None:
            raise TaskNotFoundError(task_id)
        return row

    async def enqueue_task(self, task: dict) -> str:
        row = _rows.task_row(task, _rows.now_iso())
        self._tasks.setdefault(row["task_id"], row)
        return row["task_id"]

    async def get_task(self, task_id: str) -> dict:
        return _rows.decode_task(self._task(task_id))

    async def claim_next_task(self, worker_id: str) -> dict | None:
        queued = [t for t in self._tasks.values() if t["status"] == "QUEUED"]
        if not queued:
            return None
        task = min(queued, key=lambda t: t["created_at"])  # min keeps the first of equals
        now = _rows.now_iso()
        task.update(status="RUNNING", worker_id=worker_id, attempts=task["attempts"] + 1,
                    claimed_at=now, heartbeat_at=now, updated_at=now)  # fmt: skip
        return _rows.decode_task(task)

    async def finish_task(self, task_id: str, status: str, result: dict | None = None,
                          error: str | None = None) -> bool:  # fmt: skip
        _rows.check_finish_status(status)
        task = self._task(task_id)
        if task["status"] != "RUNNING":
            return False
        task.update(
            status=status, result=_rows.dumps(result), error=error, updated_at=_rows.now_iso()
        )
        return True

    async def cancel_task(self, task_id: str) -> bool:
        task = self._task(task_id)
        if task["status"] not in ("QUEUED", "RUNNING"):
            return False
        task.update(status="CANCELLED", updated_at=_rows.now_iso())
        return True

    async def requeue_stale_tasks(self, stale_threshold_seconds: int) -> list[dict]:
        now, cutoff = _rows.now_iso(), _rows.iso_ago(stale_threshold_seconds)
        stale = [
            t
            for t in self._tasks.values()
            if t["status"] == "RUNNING" and (t["heartbeat_at"] or "") < cutoff
        ]
        for t in stale:
            if t["attempts"] >= t["max_attempts"]:
                t.update(status="FAILED", error=_rows.WORKER_DIED, updated_at=now)
            else:
                t.update(status="QUEUED", worker_id=None, updated_at=now)
        stale.sort(key=lambda t: t["status"] != "FAILED")
        return [_rows.decode_task(t) for t in stale]

    # -- edge sync -----------------------------------------------------------------
    def _held(self, wid: str) -> bool:
        return any(q["workflow_id"] == wid for q in self._quarantine.values())

    def _pending(self) -> list[dict]:
        rows = [r for r in self._workflows.values()
                if r["sync_seq"] is not None and r["status"] in TERMINAL and not self._held(r["id"])]  # fmt: skip
        return sorted(rows, key=lambda r: r["sync_seq"])

    async def get_pending_sync_workflows(
        self, limit: int, *, after_seq: int = 0
    ) -> list[WorkflowRecord | UnreadableRecord]:
        rows = [r for r in self._pending() if r["sync_seq"] > after_seq][:limit]
        return [WorkflowRecord(**_rows.pending_record_fields(r)) for r in rows]

    async def get_audit_logs_for_workflows(
        self, ids: list[str], limit_per_workflow: int = 50
    ) -> list[AuditLogRecord | UnreadableRecord]:
        wanted = {str(i) for i in ids}
        taken: dict[str, int] = {}
        out: list[AuditLogRecord | UnreadableRecord] = []
        for row in self._audit.values():
            wid = row["workflow_id"]
            if wid not in wanted or ("audit", row["audit_id"]) in self._quarantine:
                continue
            if taken.get(wid, 0) < limit_per_workflow:
                taken[wid] = taken.get(wid, 0) + 1
                out.append(_rows.decode_audit(row))
        return out

    async def ack_synced_audit_logs(self, audit_ids: list[str]) -> int:
        gone = 0
        for aid in dict.fromkeys(str(a) for a in audit_ids):
            seq = self._audit_ids.pop(aid, None)
            if seq is not None:
                del self._audit[seq]
                gone += 1
        return gone

    async def delete_synced_workflows(
        self, ids: list[str], *, versions: dict[str, int] | None = None
    ) -> int:
        now, settled = _rows.now_iso(), 0
        for wid in dict.fromkeys(str(i) for i in ids):
            row = self._workflows.get(wid)
            if (
                row is None
                or row["status"] not in TERMINAL
                or (versions is not None and versions.get(wid) != row["version"])
                or self._held(wid)
                or any(a["workflow_id"] == wid for a in self._audit.values())
            ):
                continue
            if row["status"] in FAILED:  # kept for a while (``_retention``)
                row.update(sync_seq=None, synced_at=now)
            else:
                self._apply_delete(wid, row, now)
            settled += 1
        cutoff = self.retention.failed_cutoff()
        for wid, row in list(self._workflows.items()):
            if (
                row["status"] in FAILED
                and row["sync_seq"] is None
                and (row.get("synced_at") or now) < cutoff
            ):
                self._apply_delete(wid, row, row["synced_at"])
        self._tombstones = {k: t for k, t in self._tombstones.items() if t[4] > now}
        return settled

    def _apply_delete(self, wid: str, row: dict, synced_at: str) -> None:
        del self._workflows[wid]
        key = row["idempotency_key"]
        if key is not None:
            self._keys.pop(key, None)
            self._tombstones[key] = (wid, row["workflow_type"], row["status"], synced_at,
                                     self.retention.key_expiry())  # fmt: skip
        self._logs = [g for g in self._logs if g["workflow_id"] != wid]
        self._metrics = [m for m in self._metrics if m["workflow_id"] != wid]
        self._heartbeats.pop(wid, None)
        self._tasks = {k: t for k, t in self._tasks.items()
                       if not (t["workflow_id"] == wid and t["status"] in _rows.FINISHED_TASK_STATUSES)}  # fmt: skip

    async def quarantine_sync_record(
        self, kind: str, record_id: str, reason: str, *, limit_bytes: int | None = None
    ) -> None:
        _rows.check_quarantine_kind(kind)
        record_id = str(record_id)
        wid: str | None
        if kind == "workflow":
            wid = record_id
        else:
            seq = self._audit_ids.get(record_id)
            wid = self._audit[seq]["workflow_id"] if seq is not None else None
        self._quarantine[(kind, record_id)] = {
            "workflow_id": wid,
            "reason": reason,
            "quarantined_at": _rows.now_iso(),
            "limit_bytes": limit_bytes,
        }

    def _quarantined(self, keys: list[tuple[str, str]]) -> list[QuarantinedRecord]:
        return sorted(
            (QuarantinedRecord(kind=k, id=i, **self._quarantine[(k, i)]) for k, i in keys),
            key=lambda q: (q.quarantined_at, q.kind, q.id),
        )

    def _take(
        self, ids: list[str] | None, below_limit: int | None = None
    ) -> list[QuarantinedRecord]:
        """Remove and return the quarantine entries with these record ids (None: all)."""
        wanted = None if ids is None else {str(i) for i in ids}
        keys = [(k, i) for (k, i), q in self._quarantine.items()
                if (wanted is None or i in wanted) and (below_limit is None or (
                    q["limit_bytes"] is not None and q["limit_bytes"] < below_limit))]  # fmt: skip
        taken = self._quarantined(keys)
        for key in keys:
            del self._quarantine[key]
        return taken

    async def list_sync_quarantine(self) -> list[QuarantinedRecord]:
        return self._quarantined(list(self._quarantine))

    async def requeue_sync_records(
        self, ids: list[str] | None = None, *, below_limit: int | None = None
    ) -> list[QuarantinedRecord]:
        return self._take(ids, below_limit)

    async def purge_sync_records(self, ids: list[str] | None = None) -> list[QuarantinedRecord]:
        purged = self._take(ids)
        await self.ack_synced_audit_logs([q.id for q in purged if q.kind == "audit"])
        for q in purged:
            row = self._workflows.get(q.id)
            if q.kind == "workflow" and row is not None and row["status"] in TERMINAL:
                trail = [a["audit_id"] for a in self._audit.values() if a["workflow_id"] == q.id]
                await self.ack_synced_audit_logs(trail)
                self._quarantine = {
                    k: v for k, v in self._quarantine.items() if v["workflow_id"] != q.id
                }
                self._apply_delete(q.id, row, _rows.now_iso())
        return purged

    async def sync_backlog(self) -> dict:
        pending = self._pending()
        oldest = min((r["completed_at"] for r in pending), default=None)
        return {
            "pending": len(pending),
            "oldest_pending_at": oldest,
            "quarantined": len(self._quarantine),
        }

    async def get_edge_sync_state(self, key: str) -> str | None:
        return self._sync_state.get(key)

    async def set_edge_sync_state(self, key: str, value: str) -> None:
        self._sync_state[key] = str(value)

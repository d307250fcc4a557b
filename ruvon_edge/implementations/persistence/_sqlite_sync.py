"""Edge-sync SQL (pending pages, audit pages, acks, deletes, quarantine, cursors).

These decide what leaves the device and what is deleted, so every delete
carries its whole safety predicate in SQL: terminal, version as handed out,
no audit row left, not quarantined. A workflow with a quarantined audit row
is held back from the pending set as well: it can never be deleted, and
resending it every pass would only spend bandwidth.
"""

from __future__ import annotations

import json
import sqlite3

from ruvon_edge.providers.persistence import AuditLogRecord, WorkflowRecord

from . import _rows
from ._schema import TERMINAL_SQL

_NOT_QUARANTINED = "NOT EXISTS (SELECT 1 FROM sync_quarantine q WHERE q.workflow_id = w.id)"
# "+w.status" keeps the planner on the sync_seq index (keyset order) instead of the status one.
_PENDING = f"w.sync_seq IS NOT NULL AND +w.status IN ({TERMINAL_SQL}) AND {_NOT_QUARANTINED}"


def _snapshot(conn: sqlite3.Connection, fn, *args):
    """Run several reads in one read transaction so they see one state."""
    conn.execute("BEGIN")
    try:
        return fn(conn, *args)
    finally:
        conn.execute("COMMIT")


def get_pending_sync_workflows(
    conn: sqlite3.Connection, limit: int, after_seq: int
) -> list[WorkflowRecord]:
    """One keyset page of pending workflows, by ``sync_seq`` through its index."""
    rows = conn.execute(
        f"SELECT * FROM workflows w WHERE w.sync_seq > ? AND {_PENDING} ORDER BY w.sync_seq LIMIT ?",
        (int(after_seq), int(limit)),
    )
    return [WorkflowRecord(**_rows.pending_record_fields(dict(r))) for r in rows]


def get_audit_logs_for_workflows(
    conn: sqlite3.Connection, ids: list[str], per_workflow: int
) -> list[AuditLogRecord]:
    """The oldest ``per_workflow`` unquarantined audit rows of each workflow, in one query."""
    rows = conn.execute(
        "SELECT audit_id, workflow_id, event_type, step_name, old_status, new_status, details, recorded_at "
        "FROM (SELECT a.*, ROW_NUMBER() OVER (PARTITION BY a.workflow_id ORDER BY a.seq) AS rn "
        "      FROM audit_log a WHERE a.workflow_id IN (SELECT value FROM json_each(?)) "
        "      AND NOT EXISTS (SELECT 1 FROM sync_quarantine q WHERE q.kind = 'audit' AND q.record_id = a.audit_id)) "
        "WHERE rn <= ? ORDER BY seq",
        (json.dumps([str(i) for i in ids]), int(per_workflow)),
    )
    return [_rows.decode_audit(dict(r)) for r in rows]


def ack_synced_audit_logs(conn: sqlite3.Connection, audit_ids: list[str]) -> int:
    """Delete the audit rows the cloud acked."""
    cur = conn.execute(
        "DELETE FROM audit_log WHERE audit_id IN (SELECT value FROM json_each(?))",
        (json.dumps([str(i) for i in audit_ids]),),
    )
    return cur.rowcount


def delete_synced_workflows(
    conn: sqlite3.Connection, ids: list[str], versions: dict[str, int] | None
) -> int:
    """Delete each listed workflow that is still eligible, with its logs, metrics and finished tasks."""
    deleted = 0
    for wid in dict.fromkeys(str(i) for i in ids):
        if versions is not None and wid not in versions:
            continue  # no version handed out for it: not provably unchanged
        version = versions[wid] if versions is not None else None
        gone = conn.execute(
            f"DELETE FROM workflows WHERE id = :id AND status IN ({TERMINAL_SQL}) "
            "AND (:version IS NULL OR version = :version) "
            "AND NOT EXISTS (SELECT 1 FROM sync_quarantine q WHERE q.workflow_id = :id) "
            "AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.workflow_id = :id) RETURNING id",
            {"id": wid, "version": version},
        ).fetchone()
        if gone is None:
            continue
        deleted += 1
        for table in ("execution_logs", "metrics", "heartbeats"):
            conn.execute(f"DELETE FROM {table} WHERE workflow_id = ?", (wid,))
        conn.execute(
            "DELETE FROM tasks WHERE workflow_id = ? AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')",
            (wid,),
        )
    return deleted


def quarantine_sync_record(
    conn: sqlite3.Connection, kind: str, record_id: str, reason: str
) -> None:
    """Hold a rejected record (and, for an audit row, its workflow) out of the pending set."""
    _rows.check_quarantine_kind(kind)
    wid: str | None
    if kind == "workflow":
        wid = record_id
    else:
        found = conn.execute(
            "SELECT workflow_id FROM audit_log WHERE audit_id = ?", (record_id,)
        ).fetchone()
        wid = found[0] if found else None
    conn.execute(
        "INSERT OR REPLACE INTO sync_quarantine (kind, record_id, workflow_id, reason, quarantined_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (kind, record_id, wid, reason, _rows.now_iso()),
    )


def _backlog(conn: sqlite3.Connection) -> dict:
    pending, oldest = conn.execute(
        f"SELECT COUNT(*), MIN(w.completed_at) FROM workflows w WHERE {_PENDING}"
    ).fetchone()
    quarantined = conn.execute("SELECT COUNT(*) FROM sync_quarantine").fetchone()[0]
    return {"pending": pending, "oldest_pending_at": oldest, "quarantined": quarantined}


def sync_backlog(conn: sqlite3.Connection) -> dict:
    """Pending count, oldest pending completion time, quarantined count (one snapshot)."""
    return _snapshot(conn, _backlog)


def get_edge_sync_state(conn: sqlite3.Connection, key: str) -> str | None:
    """Read one sync cursor or counter."""
    row = conn.execute("SELECT value FROM edge_sync_state WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_edge_sync_state(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Write one sync cursor or counter."""
    conn.execute(
        "INSERT INTO edge_sync_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, str(value)),
    )

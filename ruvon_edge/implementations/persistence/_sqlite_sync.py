"""Edge-sync SQL (pending pages, audit pages, acks, deletes, quarantine, cursors).

These decide what leaves the device and what is deleted, so every delete
carries its whole safety predicate in SQL: terminal, version as handed out,
no audit row left, not quarantined. What stays after sync (failures for a
while, idempotency keys) is described in ``_retention``. A workflow with a quarantined audit row
is held back from the pending set as well: it can never be deleted, and
resending it every pass would only spend bandwidth.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from ruvon_edge.providers.persistence import (
    AuditLogRecord,
    IdempotencyKeySyncedError,
    QuarantinedRecord,
    UnreadableRecord,
    WorkflowRecord,
)

from . import _rows
from ._retention import Retention
from ._schema import FAILED_SQL, TERMINAL_SQL

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


# Record field -> stored column. JSON columns are decoded as ``_rows`` does (NULL or empty -> {}).
_WF_COLS = {
    **{f: "w." + f for f in ("id", "workflow_type", "workflow_version", "status", "state",
                             "current_step", "parent_id", "idempotency_key", "created_at",
                             "updated_at", "completed_at")},
    "sync_version": "w.version",
    "sync_seq": "w.sync_seq",
}  # fmt: skip
_AUDIT_COLS = {
    f: "a." + f
    for f in ("audit_id", "workflow_id", "event_type", "step_name", "old_status", "new_status",
              "details", "recorded_at")
}  # fmt: skip
_JSON_COLS = frozenset({"state", "details"})
M = TypeVar("M", bound=BaseModel)
# The oldest ``per_workflow`` unquarantined rows of each workflow: one index seek per workflow
# (rowids from the correlated LIMIT subquery), never a scan of a long trail.
_AUDIT_PAGE = (
    "FROM json_each(?) j CROSS JOIN audit_log a ON a.seq IN "
    "(SELECT b.seq FROM audit_log b WHERE b.workflow_id = j.value AND NOT EXISTS "
    "(SELECT 1 FROM sync_quarantine q WHERE q.kind = 'audit' AND q.record_id = b.audit_id) "
    "ORDER BY b.seq LIMIT ?) ORDER BY a.seq"
)
# The rows of an ack that may leave the pending set, in one statement: the (id, version) pairs
# join the table through its primary key (CROSS JOIN: the planner must start from the list,
# never scan the terminal set), and every row carries the full safety predicate.
_ELIGIBLE = (
    "WITH c(id, version) AS (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') "
    "FROM json_each(:pairs)) SELECT w.rowid FROM c "
    f"CROSS JOIN workflows w ON w.id = c.id WHERE +w.status IN ({TERMINAL_SQL}) "
    "AND (c.version IS NULL OR w.version = c.version) "
    "AND NOT EXISTS (SELECT 1 FROM sync_quarantine q WHERE q.workflow_id = w.id) "
    "AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.workflow_id = w.id)"
)
# Failures stay (``_retention``): out of the pending set, stamped, version unchanged.
_KEEP_FAILED = (
    "UPDATE workflows SET sync_seq = NULL, synced_at = :now WHERE rowid IN "
    f"({_ELIGIBLE} AND +w.status IN ({FAILED_SQL})) RETURNING id"
)
_DELETE_ELIGIBLE = (
    f"DELETE FROM workflows WHERE rowid IN ({_ELIGIBLE} AND +w.status NOT IN ({FAILED_SQL})) "
    "RETURNING id, idempotency_key, workflow_type, status, :now"
)
_DELETE_EXPIRED = (
    "DELETE FROM workflows WHERE synced_at < ? AND sync_seq IS NULL "
    f"AND status IN ({FAILED_SQL}) RETURNING id, idempotency_key, workflow_type, status, synced_at"
)
_REMEMBER_KEY = (
    "INSERT OR REPLACE INTO idempotency_tombstones "
    "(idempotency_key, workflow_id, workflow_type, status, synced_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)"
)
_IN_IDS = "workflow_id IN (SELECT value FROM json_each(?))"


def _refuse_constant(token: str) -> None:
    raise ValueError(f"non-standard JSON token {token}")


def _obj(text: str | None) -> dict:
    """A JSON object column as a dict (NULL or an empty value is ``{}``, as ``_rows`` decodes it).

    ``NaN``/``Infinity`` are refused rather than sent as ``null``: nothing changes silently.
    """
    return (json.loads(text, parse_constant=_refuse_constant) if text is not None else None) or {}


def _tuples(conn: sqlite3.Connection, sql: str, args: tuple | dict) -> list[tuple]:
    """Plain tuples (no ``sqlite3.Row``): these pages are thousands of rows."""
    cur = conn.cursor()
    cur.row_factory = None
    return cur.execute(sql, args).fetchall()


@functools.cache
def _adapter(model: type[BaseModel]) -> TypeAdapter:
    return TypeAdapter(list[model])  # type: ignore[valid-type]  # built on first use: `import ruvon_edge` stays cheap


def _records(conn: sqlite3.Connection, model: type[M], cols: dict[str, str], tail: str,
             args: tuple) -> list[M | UnreadableRecord]:  # fmt: skip
    """Build a page of records with no Python work per row, else row by row.

    SQLite writes each row as a JSON object and pydantic validates the page in
    one call (a page is thousands of records; a Python loop over them was most
    of the agent's read time). A stored value SQLite's JSON cannot carry (NaN,
    a JSON column that is not an object, bit rot) takes the row-by-row path,
    where a row that cannot be decoded becomes an ``UnreadableRecord``.
    """
    obj = ", ".join(
        f"'{k}', " + (f"json(coalesce({c}, '{{}}'))" if k in _JSON_COLS else c)
        for k, c in cols.items()
    )
    try:
        rows = _tuples(conn, f"SELECT json_object({obj}) {tail}", args)
        page = f"[{','.join(r[0] for r in rows)}]"
        del rows  # the page's text is the only copy while pydantic reads it
        return _adapter(model).validate_json(page)
    except (sqlite3.OperationalError, ValidationError):
        pass
    conn.text_factory = bytes  # decoded per row below, so one bad row stays one bad row
    try:
        rows = _tuples(conn, f"SELECT {', '.join(cols.values())} {tail}", args)
    finally:
        conn.text_factory = str
    return [_one_record(model, dict(zip(cols, r, strict=True))) for r in rows]


def _one_record(model: type[M], raw: dict) -> M | UnreadableRecord:
    """Decode one row's text and JSON columns, or say why it cannot be."""
    kind = "workflow" if model is WorkflowRecord else "audit"
    text = {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v for k, v in raw.items()}
    try:
        for k, v in raw.items():
            raw[k] = v.decode() if isinstance(v, bytes) else v
        return model(**{k: _obj(v) if k in _JSON_COLS else v for k, v in raw.items()})
    except UnicodeDecodeError as exc:
        reason = f"stored text is not UTF-8 ({exc.reason} at byte {exc.start})"
    except ValueError as exc:  # JSONDecodeError, or a column of the wrong shape
        reason = f"stored value is not valid: {str(exc).splitlines()[0]}"
    ident = str(text["id" if kind == "workflow" else "audit_id"])
    return UnreadableRecord(kind=kind, id=ident, workflow_id=str(text.get("workflow_id", ident)),
                            reason=reason, sync_seq=raw.get("sync_seq"))  # fmt: skip


def get_pending_sync_workflows(
    conn: sqlite3.Connection, limit: int, after_seq: int, wal_to_sync: str | None
) -> list[WorkflowRecord | UnreadableRecord]:
    """One keyset page of pending workflows, by ``sync_seq`` through its index, made durable first."""
    tail = f"FROM workflows w WHERE w.sync_seq > ? AND {_PENDING} ORDER BY w.sync_seq LIMIT ?"
    page = _records(conn, WorkflowRecord, _WF_COLS, tail, (int(after_seq), int(limit)))
    fsync_wal(wal_to_sync)
    return page


def get_audit_logs_for_workflows(
    conn: sqlite3.Connection, ids: list[str], per_workflow: int, wal_to_sync: str | None
) -> list[AuditLogRecord | UnreadableRecord]:
    """The oldest ``per_workflow`` unquarantined audit rows of each workflow, oldest first, made durable first."""
    wanted = json.dumps(list(dict.fromkeys(str(i) for i in ids)))
    rows = _records(conn, AuditLogRecord, _AUDIT_COLS, _AUDIT_PAGE, (wanted, int(per_workflow)))
    fsync_wal(wal_to_sync)
    return rows


def fsync_wal(wal_path: str | None) -> None:
    """Make every committed transaction durable before any of it leaves the device.

    Under ``synchronous=NORMAL`` a COMMIT sits in the WAL without an fsync: a
    power cut may take it back. Shipped anyway, the cloud would ack rows the
    device then loses and re-runs -- new content under the same sync_version.
    So every page handed to the agent is followed by one fsync of the WAL
    (the database file itself is fsynced by every checkpoint). None: nothing
    to do (``synchronous=FULL`` or an in-memory database).
    """
    if wal_path is None:
        return
    try:
        fd = os.open(wal_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:  # no WAL: everything is in the database file, synced at checkpoint
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ack_synced_audit_logs(conn: sqlite3.Connection, audit_ids: list[str]) -> int:
    """Delete the audit rows the cloud acked."""
    cur = conn.execute(
        "DELETE FROM audit_log WHERE audit_id IN (SELECT value FROM json_each(?))",
        (json.dumps([str(i) for i in audit_ids]),),
    )
    return cur.rowcount


def delete_synced_workflows(
    conn: sqlite3.Connection, ids: list[str], versions: dict[str, int] | None, keep: Retention
) -> int:
    """Settle each listed workflow that is still eligible; return how many left the pending set.

    Failures are kept (``_retention``); the others are deleted with their
    logs, metrics and finished tasks, their idempotency keys remembered. Then
    failures and keys past their retention go.
    """
    pairs = [
        [wid, None if versions is None else versions[wid]]
        for wid in dict.fromkeys(str(i) for i in ids)
        if versions is None or wid in versions  # no version handed out: not provably unchanged
    ]
    if not pairs:
        return 0
    args = {"pairs": json.dumps(pairs), "now": _rows.now_iso()}
    kept = _tuples(conn, _KEEP_FAILED, args)
    gone = _tuples(conn, _DELETE_ELIGIBLE, args)
    expired = _tuples(conn, _DELETE_EXPIRED, (keep.failed_cutoff(),))
    _forget(conn, gone + expired, keep)
    conn.execute("DELETE FROM idempotency_tombstones WHERE expires_at <= ?", (args["now"],))
    return len(kept) + len(gone)


def _forget(conn: sqlite3.Connection, rows: list[tuple], keep: Retention) -> None:
    """Remove what deleted workflows left behind; remember their idempotency keys."""
    if not rows:
        return
    arg = (json.dumps([r[0] for r in rows]),)
    for table in ("execution_logs", "metrics", "heartbeats"):
        conn.execute(f"DELETE FROM {table} WHERE {_IN_IDS}", arg)
    conn.execute(
        f"DELETE FROM tasks WHERE {_IN_IDS} AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')", arg
    )
    expires = keep.key_expiry()
    keys = [(key, wid, wtype, status, at, expires) for wid, key, wtype, status, at in rows if key]
    if keys:
        conn.executemany(_REMEMBER_KEY, keys)


def check_idempotency_key(conn: sqlite3.Connection, key: str) -> None:
    """Raise ``IdempotencyKeySyncedError`` when ``key`` belongs to a workflow sync removed."""
    row = conn.execute(
        "SELECT workflow_id, workflow_type, status, synced_at FROM idempotency_tombstones "
        "WHERE idempotency_key = ? AND expires_at > ?",
        (key, _rows.now_iso()),
    ).fetchone()
    if row is not None:
        raise IdempotencyKeySyncedError(key, *row)


def quarantine_sync_record(
    conn: sqlite3.Connection, kind: str, record_id: str, reason: str, limit_bytes: int | None
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
        "INSERT OR REPLACE INTO sync_quarantine (kind, record_id, workflow_id, reason, quarantined_at, "
        "limit_bytes) VALUES (?, ?, ?, ?, ?, ?)",
        (kind, record_id, wid, reason, _rows.now_iso(), limit_bytes),
    )


_Q_COLS = "kind, record_id, workflow_id, reason, quarantined_at, limit_bytes"


def _quarantined(rows: list[tuple]) -> list[QuarantinedRecord]:
    records = [QuarantinedRecord(**dict(zip(("kind", "id", "workflow_id", "reason", "quarantined_at",
                                             "limit_bytes"), r, strict=True))) for r in rows]  # fmt: skip
    return sorted(records, key=lambda q: (q.quarantined_at, q.kind, q.id))


def _matching(ids: list[str] | None) -> tuple[str, tuple]:
    """A WHERE clause for quarantine rows with these record ids (None: every row)."""
    if ids is None:
        return "1", ()
    return "record_id IN (SELECT value FROM json_each(?))", (json.dumps([str(i) for i in ids]),)


def list_sync_quarantine(conn: sqlite3.Connection) -> list[QuarantinedRecord]:
    """Every quarantined record, oldest first."""
    return _quarantined(_tuples(conn, f"SELECT {_Q_COLS} FROM sync_quarantine", ()))


def requeue_sync_records(
    conn: sqlite3.Connection, ids: list[str] | None, below_limit: int | None
) -> list[QuarantinedRecord]:
    """Drop the quarantine rows (by id, or those whose byte limit is below ``below_limit``)."""
    where, args = _matching(ids)
    if below_limit is not None:
        where, args = f"{where} AND limit_bytes < ?", (*args, int(below_limit))
    sql = f"DELETE FROM sync_quarantine WHERE {where} RETURNING {_Q_COLS}"
    return _quarantined(_tuples(conn, sql, args))


def purge_sync_records(
    conn: sqlite3.Connection, ids: list[str] | None, keep: Retention
) -> list[QuarantinedRecord]:
    """Delete quarantined audit rows, and quarantined workflows that are still terminal, for good.

    A purged workflow's idempotency key is remembered like a synced one's: the
    work it stood for may have happened, so a new start with that key runs nothing.
    """
    where, args = _matching(ids)
    purged = _quarantined(
        _tuples(conn, f"DELETE FROM sync_quarantine WHERE {where} RETURNING {_Q_COLS}", args)
    )
    audit = json.dumps([q.id for q in purged if q.kind == "audit"])
    conn.execute(
        "DELETE FROM audit_log WHERE audit_id IN (SELECT value FROM json_each(?))", (audit,)
    )
    wanted = {
        "ids": json.dumps([q.id for q in purged if q.kind == "workflow"]),
        "now": _rows.now_iso(),
    }
    gone = _tuples(conn, "DELETE FROM workflows WHERE id IN (SELECT value FROM json_each(:ids)) "
                   f"AND status IN ({TERMINAL_SQL}) RETURNING id, idempotency_key, workflow_type, "
                   "status, :now", wanted)  # fmt: skip
    arg = (json.dumps([r[0] for r in gone]),)
    conn.execute(f"DELETE FROM audit_log WHERE {_IN_IDS}", arg)
    conn.execute(f"DELETE FROM sync_quarantine WHERE {_IN_IDS}", arg)
    _forget(conn, gone, keep)
    return purged


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

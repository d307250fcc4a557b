"""Workflow, audit, log, metric and heartbeat SQL, as functions run on the connection's thread.

Each write function runs inside the transaction its ``ConnectionThread``
opened, so whatever it raises leaves nothing written.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ruvon_edge.providers.persistence import (
    ConcurrentUpdateError,
    DuplicateIdempotencyKeyError,
    Transition,
    WorkflowNotFoundError,
)

from . import _rows
from ._sqlite_sync import check_idempotency_key
from ._sqlite_tasks import insert_tasks

_COLS = ", ".join(_rows.WORKFLOW_COLUMNS)
_INSERT_WORKFLOW = (
    f"INSERT INTO workflows ({_COLS}) VALUES ({', '.join(':' + c for c in _rows.WORKFLOW_COLUMNS)})"
)
# Columns with an index are only written when they change: rewriting an unchanged
# index entry still dirties its page, and every dirty page is a WAL frame at COMMIT.
_INDEXED = ("workflow_type", "status", "idempotency_key", "parent_id", "sync_seq")
_ALWAYS = tuple(
    c for c in _rows.WORKFLOW_COLUMNS if c not in _INDEXED and c not in ("id", "created_at")
)
_UPDATE_SQL: dict[tuple[tuple[str, ...], bool], str] = {}
_INSERT_AUDIT = (
    "INSERT INTO audit_log (audit_id, workflow_id, event_type, step_name, old_status, new_status, details, recorded_at) "
    "VALUES (:audit_id, :workflow_id, :event_type, :step_name, :old_status, :new_status, :details, :recorded_at)"
)
_INSERT_LOG = (
    "INSERT INTO execution_logs (workflow_id, step_name, level, message, metadata, logged_at) "
    "VALUES (:workflow_id, :step_name, :level, :message, :metadata, :logged_at)"
)
_INSERT_METRIC = (
    "INSERT INTO metrics (workflow_id, step_name, metric_name, metric_value, metadata, recorded_at) "
    "VALUES (:workflow_id, :step_name, :metric_name, :metric_value, :metadata, :recorded_at)"
)
_CURRENT = (
    f"SELECT version, created_at, completed_at, {', '.join(_INDEXED)} FROM workflows WHERE id = ?"
)


def write_workflow(
    conn: sqlite3.Connection, wid: str, data: dict, expected: Any, *, cas: bool, now: str
) -> int:
    """Insert or update one workflow row with the store's bookkeeping; return its new version.

    With ``cas``, ``expected`` None means "create" and an int means "update
    exactly that version"; anything else raises ``ConcurrentUpdateError``.
    """
    keep_definition = cas and expected is not None
    if (
        keep_definition
    ):  # an instance's definition snapshot never changes: not re-encoded, not re-written
        data = {**data, "definition": None}
    found = conn.execute(_CURRENT, (wid,)).fetchone()
    current = dict(found) if found is not None else None
    if cas:
        actual = current["version"] if current else None
        if actual != expected:
            raise ConcurrentUpdateError(wid, expected, actual)
    row, needs_seq = _rows.shape_workflow(wid, data, current, now)
    if current is None and row["idempotency_key"]:  # a start with a key: one index lookup
        check_idempotency_key(conn, row["idempotency_key"])
    if needs_seq:
        row["sync_seq"] = conn.execute(
            "UPDATE sync_counter SET last_seq = last_seq + 1 WHERE id = 1 RETURNING last_seq"
        ).fetchone()[0]
    try:
        sql = _INSERT_WORKFLOW if current is None else _update_sql(current, row, keep_definition)
        conn.execute(sql, row)
    except sqlite3.IntegrityError:
        key = row["idempotency_key"]
        holder = (
            key
            and conn.execute(
                "SELECT id FROM workflows WHERE idempotency_key = ?", (key,)
            ).fetchone()
        )
        if not holder:
            raise
        raise DuplicateIdempotencyKeyError(key, holder[0]) from None
    return row["version"]


def _update_sql(current: dict, row: dict, keep_definition: bool) -> str:
    changed = tuple(c for c in _INDEXED if current[c] != row[c])
    sql = _UPDATE_SQL.get((changed, keep_definition))
    if sql is None:
        columns = [c for c in (*_ALWAYS, *changed) if not (keep_definition and c == "definition")]
        sets = ", ".join(f"{c} = :{c}" for c in columns)
        sql = _UPDATE_SQL[(changed, keep_definition)] = (
            f"UPDATE workflows SET {sets} WHERE id = :id"
        )
    return sql


def save_workflow(conn: sqlite3.Connection, wid: str, data: dict) -> None:
    """Upsert without a version check (the reference ``save_workflow``)."""
    write_workflow(conn, wid, data, None, cas=False, now=_rows.now_iso())


def commit(conn: sqlite3.Connection, transitions: list[Transition]) -> list[int]:
    """Write every transition (row, audit, logs, metrics, tasks; heartbeat cleared); return versions."""
    now = _rows.now_iso()
    versions = []
    for t in transitions:
        wid = str(t.workflow["id"])
        versions.append(
            write_workflow(conn, wid, t.workflow, t.expected_version, cas=True, now=now)
        )
        if t.audit:
            conn.executemany(_INSERT_AUDIT, [_rows.audit_row(wid, a, now) for a in t.audit])
        if t.logs:
            conn.executemany(_INSERT_LOG, [_rows.log_row(wid, g, now) for g in t.logs])
        if t.metrics:
            conn.executemany(_INSERT_METRIC, [_rows.metric_row(wid, m, now) for m in t.metrics])
        if t.tasks:
            insert_tasks(conn, [{"workflow_id": wid, **task} for task in t.tasks], now)
        conn.execute("DELETE FROM heartbeats WHERE workflow_id = ?", (wid,))
    return versions


def load_workflow(conn: sqlite3.Connection, wid: str) -> dict:
    """Return one decoded workflow row or raise ``WorkflowNotFoundError``."""
    row = conn.execute("SELECT * FROM workflows WHERE id = ?", (wid,)).fetchone()
    if row is None:
        raise WorkflowNotFoundError(wid)
    return _rows.decode_workflow(dict(row))


def list_workflows(conn: sqlite3.Connection, status: str | None, workflow_type: str | None,
                   limit: int, offset: int) -> list[dict]:  # fmt: skip
    """Newest first (ties: newest inserted first), through the matching created_at index."""
    statuses = () if status is None else (str(status),)
    return search_workflows(conn, statuses, workflow_type, None, None, limit, offset)[0]


def search_workflows(conn: sqlite3.Connection, statuses: tuple[str, ...], workflow_type: str | None,
                     since: str | None, until: str | None, limit: int, offset: int,
                     count: bool = False) -> tuple[list[dict], int | None]:  # fmt: skip
    """One page, newest first, of the workflows in any of ``statuses`` created in [since, until);
    with ``count``, also how many match in all."""
    where: list[str] = []
    params: list[Any] = []
    if statuses:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    filters = (
        ("workflow_type = ?", workflow_type),
        ("created_at >= ?", since),
        ("created_at < ?", until),
    )
    for clause, value in filters:
        if value is not None:
            where.append(clause)
            params.append(value)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    sql = f"SELECT * FROM workflows {clause}ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?"
    rows = conn.execute(sql, (*params, int(limit), int(offset))).fetchall()
    total = None
    if count:
        total = conn.execute(f"SELECT count(*) FROM workflows {clause}", params).fetchone()[0]
    return [_rows.decode_workflow_for_listing(dict(r)) for r in rows], total


def ids_with_prefix(conn: sqlite3.Connection, prefix: str, limit: int) -> list[str]:
    """Up to ``limit`` workflow ids that start with ``prefix`` (a range scan of the primary key)."""
    upper = prefix + "\uffff"
    rows = conn.execute(
        "SELECT id FROM workflows WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
        (prefix, upper, limit),
    )
    return [r[0] for r in rows]


def log_execution(conn: sqlite3.Connection, wid: str, log: dict) -> None:
    """Append one execution log line."""
    conn.execute(_INSERT_LOG, _rows.log_row(wid, log, _rows.now_iso()))


def record_metric(conn: sqlite3.Connection, wid: str, metric: dict) -> None:
    """Append one metric."""
    conn.execute(_INSERT_METRIC, _rows.metric_row(wid, metric, _rows.now_iso()))


def get_execution_logs(conn: sqlite3.Connection, wid: str) -> list[dict]:
    """A workflow's execution logs, oldest first."""
    rows = conn.execute("SELECT * FROM execution_logs WHERE workflow_id = ? ORDER BY id", (wid,))
    return [_rows.decode_metadata_row(dict(r)) for r in rows]


def get_metrics(conn: sqlite3.Connection, wid: str) -> list[dict]:
    """A workflow's metrics, oldest first."""
    rows = conn.execute("SELECT * FROM metrics WHERE workflow_id = ? ORDER BY id", (wid,))
    return [_rows.decode_metadata_row(dict(r)) for r in rows]


def get_audit_logs(conn: sqlite3.Connection, wid: str) -> list:
    """A workflow's audit trail, oldest first."""
    rows = conn.execute("SELECT * FROM audit_log WHERE workflow_id = ? ORDER BY seq", (wid,))
    return [_rows.decode_audit(dict(r)) for r in rows]


def heartbeat_update(
    conn: sqlite3.Connection, wid: str, worker_id: str, step: str | None, metadata: Any
) -> None:
    """Upsert the workflow's heartbeat and keep that worker's running tasks of it alive."""
    now = _rows.now_iso()
    conn.execute(
        "INSERT INTO heartbeats (workflow_id, worker_id, current_step, metadata, last_heartbeat) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (workflow_id) DO UPDATE SET worker_id = excluded.worker_id, "
        "current_step = excluded.current_step, metadata = excluded.metadata, last_heartbeat = excluded.last_heartbeat",
        (wid, worker_id, step, _rows.dumps(metadata), now),
    )
    conn.execute(
        "UPDATE tasks SET heartbeat_at = ? WHERE workflow_id = ? AND worker_id = ? AND status = 'RUNNING'",
        (now, wid, worker_id),
    )


def scan_stale_heartbeats(conn: sqlite3.Connection, threshold_seconds: float) -> list[dict]:
    """In-flight workflows whose heartbeat is older than the threshold, oldest first."""
    rows = conn.execute(
        "SELECT h.workflow_id, h.worker_id, h.current_step, h.last_heartbeat, h.metadata, w.status, w.version "
        "FROM heartbeats h JOIN workflows w ON w.id = h.workflow_id "
        "WHERE h.last_heartbeat < ? AND +w.status IN ('ACTIVE', 'PENDING_ASYNC') ORDER BY h.last_heartbeat",
        (_rows.iso_ago(threshold_seconds),),
    )
    return [_rows.decode_metadata_row(dict(r)) for r in rows]

"""Task-queue SQL, as functions run on the writer connection's thread.

Claiming is one ``UPDATE ... WHERE task_id = (SELECT oldest QUEUED) RETURNING``
inside a ``BEGIN IMMEDIATE`` transaction: SQLite's write lock makes it atomic
across threads and processes, so two workers never get the same task.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ruvon_edge.providers.persistence import TaskNotFoundError

from . import _rows

_TASK_COLS = tuple(_rows.task_row({"workflow_id": None}, "").keys())
_INSERT_TASK = f"INSERT OR IGNORE INTO tasks ({', '.join(_TASK_COLS)}) VALUES ({', '.join(':' + c for c in _TASK_COLS)})"


def insert_tasks(conn: sqlite3.Connection, tasks: list[dict], now: str) -> list[str]:
    """Queue tasks; a task id that exists already is left as it is (re-dispatch is idempotent)."""
    rows = [_rows.task_row(t, now) for t in tasks]
    conn.executemany(_INSERT_TASK, rows)
    return [r["task_id"] for r in rows]


def enqueue_task(conn: sqlite3.Connection, task: dict) -> str:
    """Queue one task; return its id."""
    return insert_tasks(conn, [task], _rows.now_iso())[0]


def get_task(conn: sqlite3.Connection, task_id: str) -> dict:
    """Return one decoded task row or raise ``TaskNotFoundError``."""
    row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    if row is None:
        raise TaskNotFoundError(task_id)
    return _rows.decode_task(dict(row))


def claim_next_task(conn: sqlite3.Connection, worker_id: str) -> dict | None:
    """Take the oldest QUEUED task for ``worker_id``; None when there is none."""
    now = _rows.now_iso()
    row = conn.execute(
        "UPDATE tasks SET status = 'RUNNING', worker_id = ?, attempts = attempts + 1, "
        "claimed_at = ?, heartbeat_at = ?, updated_at = ? "
        "WHERE task_id = (SELECT task_id FROM tasks WHERE status = 'QUEUED' "
        "ORDER BY created_at, rowid LIMIT 1) RETURNING *",
        (worker_id, now, now, now),
    ).fetchone()
    return _rows.decode_task(dict(row)) if row is not None else None


def finish_task(
    conn: sqlite3.Connection, task_id: str, status: str, result: Any, error: str | None
) -> bool:
    """Move a RUNNING task to COMPLETED/FAILED; False when it was not running."""
    _rows.check_finish_status(status)
    cur = conn.execute(
        "UPDATE tasks SET status = ?, result = ?, error = ?, updated_at = ? WHERE task_id = ? AND status = 'RUNNING'",
        (status, _rows.dumps(result), error, _rows.now_iso(), task_id),
    )
    if cur.rowcount == 0:
        get_task(conn, task_id)  # raises TaskNotFoundError for an unknown id
        return False
    return True


def cancel_task(conn: sqlite3.Connection, task_id: str) -> bool:
    """Cancel a QUEUED or RUNNING task; False when it had finished already."""
    cur = conn.execute(
        "UPDATE tasks SET status = 'CANCELLED', updated_at = ? WHERE task_id = ? AND status IN ('QUEUED', 'RUNNING')",
        (_rows.now_iso(), task_id),
    )
    if cur.rowcount == 0:
        get_task(conn, task_id)
        return False
    return True


def requeue_stale_tasks(conn: sqlite3.Connection, threshold_seconds: float) -> list[dict]:
    """Requeue RUNNING tasks with a stale heartbeat, or fail them when out of attempts."""
    return _requeue(conn, "heartbeat_at < ?", _rows.iso_ago(threshold_seconds))


def requeue_worker_tasks(conn: sqlite3.Connection, worker_id: str) -> list[dict]:
    """Requeue (or fail, when out of attempts) every RUNNING task of ``worker_id``, whatever its heartbeat."""
    return _requeue(conn, "worker_id = ?", worker_id)


def _requeue(conn: sqlite3.Connection, which: str, value: str) -> list[dict]:
    now, lost = _rows.now_iso(), f"status = 'RUNNING' AND {which}"
    failed = conn.execute(
        f"UPDATE tasks SET status = 'FAILED', error = ?, updated_at = ? WHERE {lost} AND attempts >= max_attempts "
        "RETURNING *",
        (_rows.WORKER_DIED, now, value),
    ).fetchall()
    requeued = conn.execute(
        f"UPDATE tasks SET status = 'QUEUED', worker_id = NULL, updated_at = ? WHERE {lost} RETURNING *",
        (now, value),
    ).fetchall()
    return [_rows.decode_task(dict(r)) for r in (*failed, *requeued)]

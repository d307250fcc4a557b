"""The PostgreSQL task queue behind ``PostgresExecutor``: schema and every statement on it.

A task is one row of ``queue_tasks``. Workers claim the oldest QUEUED row
with ``FOR UPDATE SKIP LOCKED`` (concurrent claims neither block nor
collide), keep ``heartbeat_at`` fresh while they run it, and finish it with
a guarded ``UPDATE ... WHERE status = 'RUNNING' AND worker_id = $me`` (a task
cancelled or requeued meanwhile keeps its new status). A RUNNING row whose
heartbeat is older than the lease belongs to a dead worker: it is queued
again while it has attempts left, else FAILED. Finishing, failing and
cancelling ``NOTIFY`` the done channel, enqueueing the queue channel, in the
same transaction; the engine side applies finished ASYNC tasks to their
workflows and then marks them ``reported`` (a lease keeps two engines from
applying one at the same time; applying twice is harmless anyway).
All times are the database's clock, so workers on other machines agree.
"""

from __future__ import annotations

import json
from typing import Any

from ruvon_edge.providers.persistence import TaskNotFoundError

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE IF NOT EXISTS queue_tasks (
            task_id TEXT PRIMARY KEY,
            seq BIGSERIAL,
            kind TEXT NOT NULL CHECK (kind IN ('async', 'parallel')),
            workflow_id TEXT,
            step_name TEXT,
            function_path TEXT NOT NULL,
            payload JSONB NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
            attempts INT NOT NULL DEFAULT 0,
            max_attempts INT NOT NULL,
            worker_id TEXT,
            result JSONB,
            error TEXT,
            reported BOOLEAN NOT NULL DEFAULT false,
            report_lease TIMESTAMPTZ,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            claimed_at TIMESTAMPTZ,
            heartbeat_at TIMESTAMPTZ,
            finished_at TIMESTAMPTZ
        );
        CREATE INDEX IF NOT EXISTS queue_tasks_queued ON queue_tasks (seq) WHERE status = 'QUEUED';
        CREATE INDEX IF NOT EXISTS queue_tasks_running ON queue_tasks (heartbeat_at) WHERE status = 'RUNNING';
        CREATE INDEX IF NOT EXISTS queue_tasks_unreported ON queue_tasks (finished_at)
            WHERE NOT reported AND kind = 'async' AND status IN ('COMPLETED', 'FAILED', 'CANCELLED');
        """,
    ),
]
VERSION_TABLE = "queue_schema_version"
_FINISHED = "('COMPLETED', 'FAILED', 'CANCELLED')"
_READ = "task_id, kind, workflow_id, step_name, function_path, payload, status, attempts, max_attempts, worker_id"


def channels(schema: str) -> tuple[str, str]:
    """The (queued, done) NOTIFY channels of a queue schema."""
    return f"ruvon_queued_{schema}", f"ruvon_done_{schema}"


def _row(record: Any) -> dict[str, Any]:
    row = dict(record)
    for key in ("payload", "result"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row


async def enqueue(conn: Any, schema: str, tasks: list[dict[str, Any]]) -> None:
    """Insert tasks and wake workers; a known id is kept, and re-reported if it already finished."""
    async with conn.transaction():
        await conn.executemany(
            "INSERT INTO queue_tasks (task_id, kind, workflow_id, step_name, function_path, payload, status,"
            " max_attempts) VALUES ($1, $2, $3, $4, $5, $6, 'QUEUED', $7) ON CONFLICT (task_id) DO UPDATE"
            f" SET reported = false, report_lease = NULL WHERE queue_tasks.status IN {_FINISHED}",
            [
                (t["task_id"], t["kind"], t.get("workflow_id"), t.get("step_name"), t["payload"]["function"],
                 json.dumps(t["payload"]), t["max_attempts"])
                for t in tasks
            ],
        )  # fmt: skip
        queued, done = channels(schema)
        await conn.execute("SELECT pg_notify($1, ''), pg_notify($2, '')", queued, done)


async def claim(conn: Any, worker_id: str) -> dict[str, Any] | None:
    """Take the oldest QUEUED task for ``worker_id``; None when there is none."""
    record = await conn.fetchrow(
        "UPDATE queue_tasks SET status = 'RUNNING', worker_id = $1, attempts = attempts + 1,"
        " claimed_at = now(), heartbeat_at = now() WHERE task_id = ("
        " SELECT task_id FROM queue_tasks WHERE status = 'QUEUED' ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)"
        f" RETURNING {_READ}",
        worker_id,
    )
    return None if record is None else _row(record)


async def heartbeat(conn: Any, worker_id: str, task_ids: list[str]) -> None:
    """Keep a worker's running tasks from being taken for dead."""
    await conn.execute(
        "UPDATE queue_tasks SET heartbeat_at = now() WHERE task_id = ANY($1) AND worker_id = $2 AND status = 'RUNNING'",
        task_ids,
        worker_id,
    )


async def finish(
    conn: Any, schema: str, task_id: str, worker_id: str, result: dict | None, error: str | None
) -> bool:
    """Record a task's outcome if this worker still holds it; False when it was cancelled or requeued."""
    async with conn.transaction():
        done = await conn.fetchval(
            "UPDATE queue_tasks SET status = $3, result = $4, error = $5, finished_at = now()"
            " WHERE task_id = $1 AND worker_id = $2 AND status = 'RUNNING' RETURNING task_id",
            task_id, worker_id, "FAILED" if error is not None else "COMPLETED",
            None if result is None else json.dumps(result), error,
        )  # fmt: skip
        if done is not None:
            await conn.execute("SELECT pg_notify($1, $2)", channels(schema)[1], task_id)
        return done is not None


async def requeue_stale(conn: Any, schema: str, lease_seconds: float, error: str) -> int:
    """Queue again (or fail, out of attempts) RUNNING tasks whose worker went silent; return how many."""
    async with conn.transaction():
        moved = await conn.fetch(
            "WITH stale AS (SELECT task_id FROM queue_tasks WHERE status = 'RUNNING'"
            " AND heartbeat_at < now() - make_interval(secs => $1) FOR UPDATE SKIP LOCKED)"
            " UPDATE queue_tasks t SET worker_id = NULL,"
            " status = CASE WHEN t.attempts < t.max_attempts THEN 'QUEUED' ELSE 'FAILED' END,"
            " error = CASE WHEN t.attempts < t.max_attempts THEN NULL ELSE $2 END,"
            " finished_at = CASE WHEN t.attempts < t.max_attempts THEN NULL ELSE now() END"
            " FROM stale WHERE t.task_id = stale.task_id RETURNING t.status",
            float(lease_seconds), error,
        )  # fmt: skip
        if moved:
            queued, done = channels(schema)
            await conn.execute("SELECT pg_notify($1, ''), pg_notify($2, '')", queued, done)
        return len(moved)


async def cancel(conn: Any, schema: str, task_id: str) -> bool:
    """Cancel a task that has not finished (a running one's result will be discarded)."""
    async with conn.transaction():
        done = await conn.fetchval(
            "UPDATE queue_tasks SET status = 'CANCELLED', finished_at = now()"
            " WHERE task_id = $1 AND status IN ('QUEUED', 'RUNNING') RETURNING task_id",
            task_id,
        )
        if done is not None:
            await conn.execute("SELECT pg_notify($1, $2)", channels(schema)[1], task_id)
            return True
    await status(conn, task_id)  # TaskNotFoundError for an unknown id
    return False


async def status(conn: Any, task_id: str) -> str:
    """Return a task's status; raise ``TaskNotFoundError`` when there is no such task."""
    found = await conn.fetchval("SELECT status FROM queue_tasks WHERE task_id = $1", task_id)
    if found is None:
        raise TaskNotFoundError(task_id)
    return found


async def outcomes(conn: Any, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The finished ones among ``task_ids``: ``{task_id: {status, result, error}}``."""
    records = await conn.fetch(
        f"SELECT task_id, status, result, error FROM queue_tasks WHERE task_id = ANY($1) AND status IN {_FINISHED}",
        task_ids,
    )
    return {r["task_id"]: _row(r) for r in records}


async def take_reports(conn: Any, lease_seconds: float, limit: int) -> list[dict[str, Any]]:
    """Lease finished, unreported ASYNC tasks for applying to their workflows."""
    records = await conn.fetch(
        "UPDATE queue_tasks SET report_lease = now() + make_interval(secs => $1) WHERE task_id IN ("
        " SELECT task_id FROM queue_tasks WHERE NOT reported AND kind = 'async'"
        f" AND status IN {_FINISHED} AND (report_lease IS NULL OR report_lease < now())"
        " ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING task_id, status, result, error",
        float(lease_seconds), limit,
    )  # fmt: skip
    return [_row(r) for r in records]


async def mark_reported(conn: Any, task_id: str) -> None:
    """Record that a finished task's outcome reached its workflow."""
    await conn.execute("UPDATE queue_tasks SET reported = true WHERE task_id = $1", task_id)

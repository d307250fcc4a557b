"""PostgreSQL persistence: asyncpg pool, JSONB state, one transaction per step transition.

Why PostgreSQL: when workflows outgrow one device, many engine processes and
workers share one store. A transition locks its row (``SELECT ... FOR
UPDATE``), compares ``version`` with the one the engine read, and writes the
row, audit rows, logs, metrics and queued tasks in one transaction, so two
writers can never both win. Workers take tasks with ``FOR UPDATE SKIP
LOCKED``: concurrent claims never block on, nor return, the same row.

Rows are shaped by ``_rows`` exactly as the SQLite store shapes them (the
same bookkeeping for ``version``, ``sync_seq``, timestamps); JSON travels as
text into JSONB, timestamps as the shared ISO strings into TIMESTAMPTZ.
asyncpg is imported when the provider is initialized (the ``[postgres]``
extra), so importing this module costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from ruvon_edge.providers.persistence import (
    AuditLogRecord,
    ConcurrentUpdateError,
    DuplicateIdempotencyKeyError,
    PersistenceError,
    PersistenceProvider,
    TaskNotFoundError,
    Transition,
)
from ruvon_edge.providers.persistence import WorkflowNotFoundError as _NotFound

from . import _pg_schema, _rows

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_WF = _rows.WORKFLOW_COLUMNS
_READ = ", ".join(_WF)
_INSERT = (
    f"INSERT INTO workflows ({_READ}) VALUES ({', '.join(f'${i + 1}' for i in range(len(_WF)))})"
    " ON CONFLICT DO NOTHING RETURNING version"
)
_UPDATE = (
    "UPDATE workflows SET "
    + ", ".join(f"{c} = ${i + 1}" for i, c in enumerate(_WF) if c != "id")
    + " WHERE id = $1"
)
_UPDATE_CLEARING_HEARTBEAT = f"WITH hb AS (DELETE FROM heartbeats WHERE workflow_id = $1) {_UPDATE}"
_CURRENT = "SELECT version, status, created_at, completed_at, sync_seq, idempotency_key FROM workflows WHERE id = $1 FOR UPDATE"
_TASK_COLS = tuple(_rows.task_row({"workflow_id": None}, "").keys())
_TASK_READ = ", ".join(_TASK_COLS)
_INSERT_TASK = (
    f"INSERT INTO tasks ({_TASK_READ}) VALUES ({', '.join(f'${i + 1}' for i in range(len(_TASK_COLS)))})"
    " ON CONFLICT (task_id) DO NOTHING"
)
_AUDIT_COLS = tuple(_rows.audit_row("", {"event_type": ""}, "").keys())
_INSERT_AUDIT = (
    f"INSERT INTO audit_log ({', '.join(_AUDIT_COLS)}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
_LOG_COLS = tuple(_rows.log_row("", {"level": "", "message": ""}, "").keys())
_INSERT_LOG = f"INSERT INTO execution_logs ({', '.join(_LOG_COLS)}) VALUES ($1, $2, $3, $4, $5, $6)"
_METRIC_COLS = tuple(_rows.metric_row("", {"metric_name": "", "metric_value": 0}, "").keys())
_INSERT_METRIC = f"INSERT INTO metrics ({', '.join(_METRIC_COLS)}) VALUES ($1, $2, $3, $4, $5, $6)"
_CLAIM = (
    "UPDATE tasks SET status = 'RUNNING', worker_id = $1, attempts = attempts + 1,"
    " claimed_at = $2, heartbeat_at = $2, updated_at = $2 WHERE task_id = ("
    " SELECT task_id FROM tasks WHERE status = 'QUEUED' ORDER BY created_at, seq"
    f" LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {_TASK_READ}"
)
_STALE = "status = 'RUNNING' AND heartbeat_at < $2"


def _encode_ts(value: str) -> str:
    return value  # the shared ISO-8601 strings are valid PostgreSQL input as they are


def _decode_ts(text: str) -> str:
    """Render PostgreSQL's timestamptz text in the shared format (``...T...Z``)."""
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PostgresPersistenceProvider(PersistenceProvider):
    """Workflows, audit trail, logs, metrics, tasks and heartbeats in one PostgreSQL schema.

    ``dsn`` is a ``postgresql://`` URL; ``schema`` is created if missing, so
    several deployments (or test sessions) can share one database.
    ``synchronous_commit="off"`` (default: the server's setting) skips the WAL
    flush per commit, ~5x faster here: a server crash may then lose the last
    fraction of a second of commits, never consistency -- the trade SQLite's
    ``synchronous=NORMAL`` makes.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float = 30.0,
        synchronous_commit: str | None = None,
    ) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"PostgreSQL schema name {schema!r} is not a plain identifier")
        self.dsn = dsn
        self.schema = schema
        self._settings = {"search_path": schema, "TimeZone": "UTC"}
        if synchronous_commit is not None:
            self._settings["synchronous_commit"] = synchronous_commit
        self._pool_args = {
            "min_size": min_size,
            "max_size": max_size,
            "command_timeout": command_timeout,
        }
        self._pool: Any = None
        self._errors: tuple[type[BaseException], ...] = (OSError,)

    # -- lifecycle ----------------------------------------------------------------
    async def initialize(self) -> None:
        """Open the pool and create or migrate the schema (idempotent, safe across processes)."""
        if self._pool is not None:
            return
        try:
            import asyncpg
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise PersistenceError(
                "PostgreSQL support needs asyncpg: pip install 'ruvon-edge[postgres]'"
            ) from exc
        self._errors = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                init=self._init_connection,
                server_settings=self._settings,
                **self._pool_args,
            )
            async with self._pool.acquire() as conn:
                await _pg_schema.migrate(conn, self.schema)
        except BaseException as exc:
            await self.close()
            if not isinstance(exc, self._errors):
                raise
            raise PersistenceError(
                f"PostgreSQL store (schema {self.schema}) could not start: {exc}"
            ) from exc

    @staticmethod
    async def _init_connection(conn: Any) -> None:
        await conn.set_type_codec(
            "timestamptz",
            encoder=_encode_ts,
            decoder=_decode_ts,
            schema="pg_catalog",
            format="text",
        )

    async def close(self) -> None:
        """Close the pool; safe to call twice."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _conn(self, what: str) -> AsyncIterator[Any]:
        """Lend a pooled connection; driver errors become one-line ``PersistenceError``s."""
        if self._pool is None:
            raise PersistenceError(
                f"PostgreSQL store (schema {self.schema}): {what} before initialize()"
            )
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except PersistenceError:
            raise
        except self._errors as exc:
            raise PersistenceError(
                f"PostgreSQL store (schema {self.schema}): {what} failed: {exc}"
            ) from exc

    # -- workflows ------------------------------------------------------------------
    async def save_workflow(self, workflow_id: UUID, workflow_data: dict) -> None:
        """Insert or replace a workflow row (no version check; bumps ``version``)."""
        async with self._conn("save_workflow") as conn, conn.transaction():
            await self._write(
                conn, str(workflow_id), workflow_data, None, cas=False, now=_rows.now_iso()
            )

    async def commit(self, transitions: list[Transition]) -> list[int]:
        """Write all transitions in one transaction, each a compare-and-set on ``version``."""
        now = _rows.now_iso()
        versions = []
        async with self._conn("commit") as conn, conn.transaction():
            for t in transitions:
                wid = str(t.workflow["id"])
                versions.append(  # its UPDATE clears the heartbeat: the step in flight has finished
                    await self._write(conn, wid, t.workflow, t.expected_version, cas=True, now=now)
                )
                await self._append(conn, wid, t, now)
        return versions

    async def _write(
        self, conn: Any, wid: str, data: dict, expected: Any, *, cas: bool, now: str
    ) -> int:
        """Lock, check and write one workflow row; return its new version."""
        found = await conn.fetchrow(_CURRENT, wid)
        current = dict(found) if found is not None else None
        if cas and (current["version"] if current else None) != expected:
            raise ConcurrentUpdateError(wid, expected, current["version"] if current else None)
        row, needs_seq = _rows.shape_workflow(wid, data, current, now)
        if needs_seq:
            row["sync_seq"] = await conn.fetchval("SELECT nextval('workflow_sync_seq')")
        key = row["idempotency_key"]
        if key is not None and current is not None and current["idempotency_key"] != key:
            holder = await conn.fetchval("SELECT id FROM workflows WHERE idempotency_key = $1", key)
            if holder is not None and holder != wid:
                raise DuplicateIdempotencyKeyError(key, holder)
        params = [row[c] for c in _WF]
        if current is not None:
            await conn.execute(_UPDATE_CLEARING_HEARTBEAT if cas else _UPDATE, *params)
        elif await conn.fetchval(_INSERT, *params) is None:  # lost a race with a concurrent creator
            holder = key and await conn.fetchval(
                "SELECT id FROM workflows WHERE idempotency_key = $1", key
            )
            if holder and holder != wid:
                raise DuplicateIdempotencyKeyError(key, holder)
            raise ConcurrentUpdateError(
                wid,
                expected,
                await conn.fetchval("SELECT version FROM workflows WHERE id = $1", wid),
            )
        return row["version"]

    async def _append(self, conn: Any, wid: str, t: Transition, now: str) -> None:
        """Insert a transition's audit rows, logs, metrics and tasks."""
        for sql, cols, rows in (
            (_INSERT_AUDIT, _AUDIT_COLS, [_rows.audit_row(wid, a, now) for a in t.audit]),
            (_INSERT_LOG, _LOG_COLS, [_rows.log_row(wid, g, now) for g in t.logs]),
            (_INSERT_METRIC, _METRIC_COLS, [_rows.metric_row(wid, m, now) for m in t.metrics]),
            (
                _INSERT_TASK,
                _TASK_COLS,
                [_rows.task_row({"workflow_id": wid, **task}, now) for task in t.tasks],
            ),
        ):
            if rows:
                await conn.executemany(sql, [[r[c] for c in cols] for r in rows])

    async def load_workflow(self, workflow_id: UUID) -> dict:
        """Return the workflow row; raise ``WorkflowNotFoundError`` when absent."""
        async with self._conn("load_workflow") as conn:
            record = await conn.fetchrow(
                f"SELECT {_READ} FROM workflows WHERE id = $1", str(workflow_id)
            )
        if record is None:
            raise _NotFound(workflow_id)
        return _rows.decode_workflow(dict(record))

    async def list_workflows(
        self,
        status: str | None = None,
        workflow_type: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[dict]:
        """Return workflow rows, newest first (ties: newest inserted first), filtered and paginated."""
        where, args = [], []
        for column, value in (("status", status), ("workflow_type", workflow_type)):
            if value is not None:
                args.append(str(value))
                where.append(f"{column} = ${len(args)}")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = (
            f"SELECT {_READ} FROM workflows {clause} ORDER BY created_at DESC, seq DESC"
            f" LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}"
        )
        async with self._conn("list_workflows") as conn:
            records = await conn.fetch(sql, *args, max(int(limit), 0), max(int(offset), 0))
        return [_rows.decode_workflow(dict(r)) for r in records]

    # -- logs, metrics, audit ----------------------------------------------------------
    async def log_execution(
        self, workflow_id, step_name, level, message, metadata: dict | None = None
    ) -> None:
        """Append an execution log line for a workflow."""
        log = {"step_name": step_name, "level": level, "message": message, "metadata": metadata}
        await self._insert_one(
            "log_execution",
            _INSERT_LOG,
            _LOG_COLS,
            _rows.log_row(str(workflow_id), log, _rows.now_iso()),
        )

    async def record_metric(
        self, workflow_id, step_name, metric_name, metric_value: float, metadata: dict | None = None
    ) -> None:
        """Append a numeric metric for a workflow step."""
        metric = {
            "step_name": step_name,
            "metric_name": metric_name,
            "metric_value": metric_value,
            "metadata": metadata,
        }
        row = _rows.metric_row(str(workflow_id), metric, _rows.now_iso())
        await self._insert_one("record_metric", _INSERT_METRIC, _METRIC_COLS, row)

    async def _insert_one(self, what: str, sql: str, cols: tuple, row: dict) -> None:
        async with self._conn(what) as conn:
            await conn.execute(sql, *(row[c] for c in cols))

    async def get_execution_logs(self, workflow_id: UUID | str) -> list[dict]:
        """Return a workflow's execution logs, oldest first."""
        rows = await self._fetch(
            "SELECT * FROM execution_logs WHERE workflow_id = $1 ORDER BY id", str(workflow_id)
        )
        return [_rows.decode_metadata_row(r) for r in rows]

    async def get_metrics(self, workflow_id: UUID | str) -> list[dict]:
        """Return a workflow's metrics, oldest first."""
        rows = await self._fetch(
            "SELECT * FROM metrics WHERE workflow_id = $1 ORDER BY id", str(workflow_id)
        )
        return [_rows.decode_metadata_row(r) for r in rows]

    async def get_audit_logs(self, workflow_id: UUID | str) -> list[AuditLogRecord]:
        """Return a workflow's whole audit trail, oldest first."""
        rows = await self._fetch(
            "SELECT * FROM audit_log WHERE workflow_id = $1 ORDER BY seq", str(workflow_id)
        )
        return [_rows.decode_audit(r) for r in rows]

    async def _fetch(self, sql: str, *args: Any) -> list[dict]:
        async with self._conn("read") as conn:
            return [dict(r) for r in await conn.fetch(sql, *args)]

    # -- tasks ----------------------------------------------------------------------------
    async def enqueue_task(self, task: dict) -> str:
        """Queue a task; enqueueing the same ``task_id`` twice keeps the first."""
        row = _rows.task_row(task, _rows.now_iso())
        await self._insert_one("enqueue_task", _INSERT_TASK, _TASK_COLS, row)
        return row["task_id"]

    async def get_task(self, task_id: str) -> dict:
        """Return a task row; raise ``TaskNotFoundError`` when absent."""
        rows = await self._fetch(f"SELECT {_TASK_READ} FROM tasks WHERE task_id = $1", str(task_id))
        if not rows:
            raise TaskNotFoundError(task_id)
        return _rows.decode_task(rows[0])

    async def claim_next_task(self, worker_id: str) -> dict | None:
        """Take the oldest queued task (``FOR UPDATE SKIP LOCKED``: claims never collide)."""
        async with self._conn("claim_next_task") as conn:
            record = await conn.fetchrow(_CLAIM, worker_id, _rows.now_iso())
        return None if record is None else _rows.decode_task(dict(record))

    async def finish_task(
        self, task_id: str, status: str, result: dict | None = None, error: str | None = None
    ) -> bool:
        """Move a RUNNING task to COMPLETED/FAILED; False if it was not running."""
        _rows.check_finish_status(status)
        sql = "UPDATE tasks SET status = $2, result = $3, error = $4, updated_at = $5 WHERE task_id = $1 AND status = 'RUNNING'"
        return await self._move_task(
            "finish_task", sql, str(task_id), status, _rows.dumps(result), error, _rows.now_iso()
        )

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a queued or running task; False if it had already finished."""
        sql = "UPDATE tasks SET status = 'CANCELLED', updated_at = $2 WHERE task_id = $1 AND status IN ('QUEUED', 'RUNNING')"
        return await self._move_task("cancel_task", sql, str(task_id), _rows.now_iso())

    async def _move_task(self, what: str, sql: str, task_id: str, *args: Any) -> bool:
        async with self._conn(what) as conn:
            if await conn.execute(sql, task_id, *args) != "UPDATE 0":
                return True
            if await conn.fetchval("SELECT 1 FROM tasks WHERE task_id = $1", task_id) is None:
                raise TaskNotFoundError(task_id)
            return False

    async def requeue_stale_tasks(self, stale_threshold_seconds: int) -> list[dict]:
        """Requeue RUNNING tasks with a stale heartbeat; fail those out of attempts."""
        now, cutoff = _rows.now_iso(), _rows.iso_ago(stale_threshold_seconds)
        async with self._conn("requeue_stale_tasks") as conn, conn.transaction():
            failed = await conn.fetch(
                f"UPDATE tasks SET status = 'FAILED', error = $3, updated_at = $1"
                f" WHERE {_STALE} AND attempts >= max_attempts RETURNING {_TASK_READ}",
                now, cutoff, _rows.WORKER_DIED,
            )  # fmt: skip
            requeued = await conn.fetch(
                f"UPDATE tasks SET status = 'QUEUED', worker_id = NULL, updated_at = $1 WHERE {_STALE}"
                f" RETURNING {_TASK_READ}",
                now, cutoff,
            )  # fmt: skip
        return [_rows.decode_task(dict(r)) for r in (*failed, *requeued)]

    # -- heartbeats ---------------------------------------------------------------------------
    async def heartbeat_update(
        self, workflow_id, worker_id, current_step, metadata: dict | None = None
    ) -> None:
        """Record that ``worker_id`` is alive on the workflow, keeping its running tasks of it alive."""
        wid, now = str(workflow_id), _rows.now_iso()
        async with self._conn("heartbeat_update") as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO heartbeats (workflow_id, worker_id, current_step, metadata, last_heartbeat)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (workflow_id) DO UPDATE SET"
                " worker_id = EXCLUDED.worker_id, current_step = EXCLUDED.current_step,"
                " metadata = EXCLUDED.metadata, last_heartbeat = EXCLUDED.last_heartbeat",
                wid, worker_id, current_step, _rows.dumps(metadata), now,
            )  # fmt: skip
            await conn.execute(
                "UPDATE tasks SET heartbeat_at = $1 WHERE workflow_id = $2 AND worker_id = $3 AND status = 'RUNNING'",
                now, wid, worker_id,
            )  # fmt: skip

    async def scan_stale_heartbeats(self, stale_threshold_seconds: int) -> list[dict]:
        """Return in-flight workflows whose heartbeat is older than the threshold, oldest first."""
        rows = await self._fetch(
            "SELECT h.workflow_id, h.worker_id, h.current_step, h.last_heartbeat, h.metadata, w.status, w.version"
            " FROM heartbeats h JOIN workflows w ON w.id = h.workflow_id"
            " WHERE h.last_heartbeat < $1 AND w.status IN ('ACTIVE', 'PENDING_ASYNC') ORDER BY h.last_heartbeat",
            _rows.iso_ago(stale_threshold_seconds),
        )
        return [_rows.decode_metadata_row(r) for r in rows]

"""Where the receiver keeps device keys, used nonces, workflows and audit rows.

One transaction per batch; workflows are upserted by ``(device, id,
sync_version)`` and audit rows by ``(device, audit_id)`` with "do nothing on
conflict", so a batch sent twice stores each record once and is acked twice.
``sqlite:///path`` (stdlib sqlite3 on one owner thread) is the default;
``postgresql://...`` (asyncpg, imported only then; ``?schema=NAME`` selects a
schema) is for scale.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sqlite3
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from pydantic_core import to_json

from sync_agent.protocol import TIMESTAMP_WINDOW_SECONDS, WireAuditLog, WireWorkflow

_WF_COLS = (
    "device_id, id, sync_version, workflow_type, workflow_version, status, state, current_step, "
    "parent_id, idempotency_key, created_at, updated_at, completed_at, batch_id, received_at"
)
_AUDIT_COLS = (
    "device_id, audit_id, workflow_id, event_type, step_name, old_status, new_status, details, "
    "recorded_at, batch_id, received_at"
)
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS device_keys (key_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS nonces (key_id TEXT NOT NULL, nonce TEXT NOT NULL, ts BIGINT NOT NULL, PRIMARY KEY (key_id, nonce))",
    "CREATE INDEX IF NOT EXISTS nonces_ts ON nonces (ts)",
    "CREATE TABLE IF NOT EXISTS workflows (device_id TEXT NOT NULL, id TEXT NOT NULL, sync_version BIGINT NOT NULL, "
    "workflow_type TEXT NOT NULL, workflow_version TEXT, status TEXT NOT NULL, state {json} NOT NULL, current_step TEXT, "
    "parent_id TEXT, idempotency_key TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, completed_at TEXT, "
    "batch_id TEXT NOT NULL, received_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, id, sync_version))",
    "CREATE TABLE IF NOT EXISTS audit_logs (device_id TEXT NOT NULL, audit_id TEXT NOT NULL, workflow_id TEXT NOT NULL, "
    "event_type TEXT NOT NULL, step_name TEXT, old_status TEXT, new_status TEXT, details {json} NOT NULL, "
    "recorded_at TEXT NOT NULL, batch_id TEXT NOT NULL, received_at DOUBLE PRECISION NOT NULL, "
    "PRIMARY KEY (device_id, audit_id))",
    # The operator console: its operators, login sessions, and an index for each of its queries.
    "CREATE TABLE IF NOT EXISTS operators (name TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, "
    "created_at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS operator_sessions (session_sha256 TEXT PRIMARY KEY, operator TEXT NOT NULL, "
    "expires_at DOUBLE PRECISION NOT NULL)",
]


def _wf_row(device_id: str, w: WireWorkflow, batch_id: str, now: float) -> tuple:
    return (
        device_id, w.id, w.sync_version, w.workflow_type, w.workflow_version, w.status,
        to_json(w.state).decode(), w.current_step, w.parent_id, w.idempotency_key, w.created_at,
        w.updated_at, w.completed_at, batch_id, now,
    )  # fmt: skip


def _audit_row(device_id: str, a: WireAuditLog, batch_id: str, now: float) -> tuple:
    return (
        device_id, a.audit_id, a.workflow_id, a.event_type, a.step_name, a.old_status,
        a.new_status, to_json(a.details).decode(), a.recorded_at, batch_id, now,
    )  # fmt: skip


class Store(ABC):
    """The receiver's durable state."""

    @abstractmethod
    async def initialize(self) -> None:
        """Open the store and create the schema."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; safe to call twice."""

    @abstractmethod
    async def add_key(self, key_id: str, device_id: str) -> None:
        """Register a device key id (the secret is derived, never stored)."""

    @abstractmethod
    async def device_for_key(self, key_id: str) -> str | None:
        """Return the device a key id belongs to, or None."""

    @abstractmethod
    async def use_nonce(self, key_id: str, nonce: str, timestamp: int) -> bool:
        """Record a nonce; False when it was seen before (a replay)."""

    @abstractmethod
    async def ingest(
        self,
        device_id: str,
        batch_id: str,
        workflows: list[WireWorkflow],
        audits: list[WireAuditLog],
    ) -> None:
        """Store a batch's valid records in ONE transaction; return only after commit."""

    @abstractmethod
    async def counts(self, device_id: str | None = None) -> dict[str, int]:
        """Return ``{"workflows": n, "audit_logs": n}`` (for one device, or all)."""

    @abstractmethod
    async def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Run one statement written with ``?`` placeholders (committed at once); return its rows.

        For readers that keep their SQL beside their pages (the console) rather than here.
        """


class SQLiteStore(Store):
    """Stdlib sqlite3 on one owner thread; WAL with ``synchronous=FULL`` so an ack means on disk."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._nonce_calls = 0

    async def _run(self, fn, *args):
        if self._pool is None:
            raise RuntimeError("store is not initialized")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is not initialized")
        return self._conn

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute(
            "PRAGMA cache_size=-65536"
        )  # 64 MiB: inserts with random uuid keys touch the whole index
        for stmt in _SCHEMA:
            conn.execute(stmt.format(json="TEXT"))
        self._conn = conn

    def _tx(self, statements: list[tuple[str, Any]]) -> None:
        conn = self._db
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in statements:
                conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._db.execute(sql, args).fetchall()

    async def initialize(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ruvon-cloud-sqlite")
            await self._run(self._open)

    async def close(self) -> None:
        if self._pool is not None:
            if self._conn is not None:
                await self._run(self._conn.close)
            self._pool.shutdown(wait=True)
            self._pool, self._conn = None, None

    async def add_key(self, key_id: str, device_id: str) -> None:
        sql = "INSERT INTO device_keys (key_id, device_id, created_at) VALUES (?, ?, ?)"
        await self._run(self._tx, [(sql, [(key_id, device_id, time.time())])])

    async def device_for_key(self, key_id: str) -> str | None:
        rows = await self._run(
            self._query, "SELECT device_id FROM device_keys WHERE key_id = ?", (key_id,)
        )
        return rows[0][0] if rows else None

    def _use_nonce(self, key_id: str, nonce: str, timestamp: int) -> bool:
        self._nonce_calls += 1
        try:
            self._db.execute(
                "INSERT INTO nonces (key_id, nonce, ts) VALUES (?, ?, ?)",
                (key_id, nonce, timestamp),
            )
        except sqlite3.IntegrityError:
            return False
        if self._nonce_calls % 1000 == 0:  # nonces older than the window can never be replayed
            self._db.execute(
                "DELETE FROM nonces WHERE ts < ?",
                (int(time.time()) - 2 * TIMESTAMP_WINDOW_SECONDS,),
            )
        return True

    async def use_nonce(self, key_id: str, nonce: str, timestamp: int) -> bool:
        return await self._run(self._use_nonce, key_id, nonce, timestamp)

    async def ingest(self, device_id, batch_id, workflows, audits) -> None:
        now = time.time()
        await self._run(
            self._tx,
            [
                (
                    f"INSERT INTO workflows ({_WF_COLS}) VALUES ({','.join('?' * 15)}) ON CONFLICT DO NOTHING",
                    [_wf_row(device_id, w, batch_id, now) for w in workflows],
                ),
                (
                    f"INSERT INTO audit_logs ({_AUDIT_COLS}) VALUES ({','.join('?' * 11)}) ON CONFLICT DO NOTHING",
                    [_audit_row(device_id, a, batch_id, now) for a in audits],
                ),
            ],
        )

    async def counts(self, device_id: str | None = None) -> dict[str, int]:
        where, args = ("WHERE device_id = ?", (device_id,)) if device_id else ("", ())
        wf = await self._run(self._query, f"SELECT count(*) FROM workflows {where}", args)
        au = await self._run(self._query, f"SELECT count(*) FROM audit_logs {where}", args)
        return {"workflows": wf[0][0], "audit_logs": au[0][0]}

    async def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        return await self._run(self._query, sql, args)


class PostgresStore(Store):
    """asyncpg pool; JSONB columns; a batch is one transaction of two ``executemany`` calls."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        self.schema = query.pop("schema", [None])[0]
        self.dsn = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
        self._pool: Any = None

    async def initialize(self) -> None:
        import asyncpg  # the [postgres] extra; imported only when this store is used

        settings = {"search_path": self.schema} if self.schema else {}
        if self.schema:
            conn = await asyncpg.connect(self.dsn)
            try:
                await conn.execute(
                    f'CREATE SCHEMA IF NOT EXISTS "{self.schema.replace(chr(34), "")}"'
                )
            finally:
                await conn.close()
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=4, server_settings=settings
        )
        async with self._pool.acquire() as conn:
            for stmt in _SCHEMA:
                await conn.execute(stmt.format(json="JSONB"))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def add_key(self, key_id: str, device_id: str) -> None:
        await self._pool.execute(
            "INSERT INTO device_keys (key_id, device_id, created_at) VALUES ($1, $2, $3)",
            key_id,
            device_id,
            time.time(),
        )

    async def device_for_key(self, key_id: str) -> str | None:
        return await self._pool.fetchval(
            "SELECT device_id FROM device_keys WHERE key_id = $1", key_id
        )

    async def use_nonce(self, key_id: str, nonce: str, timestamp: int) -> bool:
        inserted = await self._pool.fetchval(
            "INSERT INTO nonces (key_id, nonce, ts) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1",
            key_id, nonce, timestamp,
        )  # fmt: skip
        if inserted and secrets.randbelow(1000) == 0:  # purge now and then
            await self._pool.execute(
                "DELETE FROM nonces WHERE ts < $1", int(time.time()) - 2 * TIMESTAMP_WINDOW_SECONDS
            )
        return bool(inserted)

    async def ingest(self, device_id, batch_id, workflows, audits) -> None:
        now = time.time()
        wf_params = ", ".join(f"${i}" for i in range(1, 16))
        au_params = ", ".join(f"${i}" for i in range(1, 12))
        async with self._pool.acquire() as conn, conn.transaction():
            if workflows:
                await conn.executemany(
                    f"INSERT INTO workflows ({_WF_COLS}) VALUES ({wf_params}) ON CONFLICT DO NOTHING",
                    [_wf_row(device_id, w, batch_id, now) for w in workflows],
                )
            if audits:
                await conn.executemany(
                    f"INSERT INTO audit_logs ({_AUDIT_COLS}) VALUES ({au_params}) ON CONFLICT DO NOTHING",
                    [_audit_row(device_id, a, batch_id, now) for a in audits],
                )

    async def counts(self, device_id: str | None = None) -> dict[str, int]:
        where, args = ("WHERE device_id = $1", (device_id,)) if device_id else ("", ())
        wf = await self._pool.fetchval(f"SELECT count(*) FROM workflows {where}", *args)
        au = await self._pool.fetchval(f"SELECT count(*) FROM audit_logs {where}", *args)
        return {"workflows": wf, "audit_logs": au}

    async def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        numbered = iter(range(1, len(args) + 1))
        rows = await self._pool.fetch(re.sub(r"\?", lambda _: f"${next(numbered)}", sql), *args)
        return [tuple(row) for row in rows]


def open_store(url: str) -> Store:
    """Return the store for ``sqlite:///path`` or ``postgresql://...``; ValueError otherwise."""
    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    raise ValueError(f"unsupported store URL {url!r} (use sqlite:///PATH or postgresql://...)")

"""The default store: one SQLite file, WAL, ``synchronous=FULL`` so an ack means on disk.

Two connections, each owned by its own thread: the writer (every write
transaction, one at a time, behind an asyncio lock) and a reader for queries,
which WAL lets run while a batch is being written.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from ruvon_cloud.store import Store, StoreUnavailable, Tx, describe

log = logging.getLogger(__name__)
T = TypeVar("T")


class SQLiteStore(Store):
    """Stdlib sqlite3; the file's directory must exist (a typo must not create a second store)."""

    def __init__(self, path: str, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def _on(self, pool: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any) -> T:
        if pool is None:
            raise RuntimeError("store is not initialized")
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    def _connect(self) -> sqlite3.Connection:
        folder = Path(self.path).resolve().parent
        if not folder.is_dir():
            raise ValueError(f"store directory {folder} does not exist (create it first)")
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: random uuid keys touch the whole index
        return conn

    async def initialize(self) -> None:
        if self._writer is not None:
            return
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ruvon-cloud-sqlite-w")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="ruvon-cloud-sqlite-r")
        try:
            self._wconn = await self._on(self._writer, self._connect)
            async with self.transaction() as tx:
                await self.migrate(tx)
            self._rconn = await self._on(self._reader, self._connect)
        except sqlite3.Error as exc:
            await self.close()
            raise StoreUnavailable(f"{self.path}: {describe(exc)}") from exc
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for pool, conn in ((self._writer, self._wconn), (self._reader, self._rconn)):
            if pool is not None:
                if conn is not None:
                    await self._on(pool, conn.close)
                pool.shutdown(wait=True)
        self._writer = self._reader = None
        self._wconn = self._rconn = None

    @asynccontextmanager
    async def transaction(self, lock: str | None = None) -> AsyncIterator[Tx]:
        """``BEGIN IMMEDIATE`` on the writer: one transaction at a time, so ``lock`` adds nothing."""
        async with self._lock:
            conn = self._wconn
            if conn is None:
                raise RuntimeError("store is not initialized")
            tx = _SQLiteTx(functools.partial(self._on, self._writer), conn)
            try:
                try:
                    yield tx
                    await tx.commit()
                except BaseException:
                    await self._on(self._writer, _rollback, conn)
                    raise
            except sqlite3.Error as exc:
                raise StoreUnavailable(describe(exc)) from exc

    async def fetch(self, sql: str, *args: Any) -> list[tuple]:
        conn = self._rconn
        if conn is None:
            raise RuntimeError("store is not initialized")
        try:
            return await self._on(self._reader, lambda: conn.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise StoreUnavailable(describe(exc)) from exc

    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, Any]:
        return f"{column} IN (SELECT value FROM json_each(?))", json.dumps(list(values))


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back what is still open; a failed COMMIT may have ended it already (disk full)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the original error is the one that matters
            log.warning("rollback failed: %s", exc)


class _SQLiteTx:
    """One transaction on the writer thread, in as few thread hops as its reads allow.

    ``BEGIN IMMEDIATE`` and ``executemany`` batches are held back and run in
    the same hop as the next ``execute``/``fetch``, or with ``COMMIT`` (a
    batch is three hops however many statements it has).
    """

    def __init__(self, run: Callable[..., Any], conn: sqlite3.Connection) -> None:
        self._run, self._conn = run, conn
        self._begun = False
        self._pending: list[tuple[str, list[tuple]]] = []

    def _catch_up(self) -> None:
        """Begin if not yet begun, then run the held-back statements (on the writer thread)."""
        if not self._begun:
            self._conn.execute("BEGIN IMMEDIATE")
            self._begun = True
        for sql, rows in self._pending:
            self._conn.executemany(sql, rows)
        self._pending.clear()

    async def execute(self, sql: str, *args: Any) -> int:
        def run() -> int:
            self._catch_up()
            return self._conn.execute(sql, args).rowcount

        return await self._run(run)

    async def executemany(self, sql: str, rows: list[tuple]) -> None:
        self._pending.append((sql, rows))

    async def fetch(self, sql: str, *args: Any) -> list[tuple]:
        def run() -> list[tuple]:
            self._catch_up()
            return self._conn.execute(sql, args).fetchall()

        return await self._run(run)

    async def commit(self) -> None:
        def run() -> None:
            self._catch_up()
            self._conn.execute("COMMIT")

        await self._run(run)

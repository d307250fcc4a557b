"""The store for scale: PostgreSQL through an asyncpg pool (the ``[postgres]`` extra).

``?schema=NAME`` in the URL selects (and creates) a schema. Queries are
written with ``?`` placeholders in ``ruvon_cloud.store`` and numbered here;
``transaction(lock=device)`` takes a transaction-scoped advisory lock so two
batches of one device never check for conflicts at the same time, and schema
migrations run under one too, so ``add-device`` may run beside ``serve``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from ruvon_cloud.store import Store, StoreUnavailable, Tx, describe

_MIGRATION_LOCK = "ruvon-cloud/migrate"


@functools.lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """``?`` placeholders as ``$1, $2, ...`` (no query here has a literal ``?``)."""
    counter = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


class PostgresStore(Store):
    """asyncpg pool; JSONB columns."""

    json_type = "JSONB"
    holds_nul = False
    floor = "FLOOR({})::BIGINT"

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        self.schema = query.pop("schema", [None])[0]
        self.dsn = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
        self._pool: Any = None
        # errors that mean the database is unreachable or failing (asyncpg's join on first use)
        self._outages: tuple[type[BaseException], ...] = (OSError, TimeoutError)

    async def initialize(self) -> None:
        import asyncpg  # the [postgres] extra; imported only when this store is used

        self._outages = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
        try:
            await self._connect(asyncpg)
        except self._outages as exc:
            await self.close()
            raise StoreUnavailable(describe(exc)) from exc

    async def _connect(self, asyncpg: Any) -> None:
        if self._pool is not None:
            return
        settings = {"search_path": self.schema} if self.schema else {}
        if self.schema:
            conn = await asyncpg.connect(self.dsn)
            try:
                await conn.execute(
                    f'CREATE SCHEMA IF NOT EXISTS "{self.schema.replace(chr(34), "")}"'
                )
            except asyncpg.UniqueViolationError:
                pass  # created by a concurrent initialize
            finally:
                await conn.close()
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=4, server_settings=settings
        )
        async with self.transaction(lock=_MIGRATION_LOCK) as tx:
            await self.migrate(tx)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def transaction(self, lock: str | None = None) -> AsyncIterator[Tx]:
        if self._pool is None:
            raise RuntimeError("store is not initialized")
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                if lock is not None:
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", lock)
                yield _PostgresTx(conn)
        except self._outages as exc:
            raise StoreUnavailable(describe(exc)) from exc

    async def fetch(self, sql: str, *args: Any) -> list[tuple]:
        if self._pool is None:
            raise RuntimeError("store is not initialized")
        try:
            return [tuple(r) for r in await self._pool.fetch(numbered(sql), *args)]
        except self._outages as exc:
            raise StoreUnavailable(describe(exc)) from exc

    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, Any]:
        return f"{column} = ANY(?::text[])", list(values)


class _PostgresTx:
    """Statements of one transaction on one pooled connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        status = await self._conn.execute(numbered(sql), *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: list[tuple]) -> None:
        await self._conn.executemany(numbered(sql), rows)

    async def fetch(self, sql: str, *args: Any) -> list[tuple]:
        return [tuple(r) for r in await self._conn.fetch(numbered(sql), *args)]

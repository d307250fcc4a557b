"""Isolated PostgreSQL schemas and Redis key prefixes for tests.

Other helpers and CI jobs share the local servers, so every store a test
opens lives in its own schema or key prefix, tagged with this session's id,
and is dropped when the test ends.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services import POSTGRES_DSN, REDIS_URL, require  # noqa: F401 - re-exported to the factories

SESSION_TAG = uuid.uuid4().hex[:10]
_serial = itertools.count()


def unique_schema() -> str:
    """Return a PostgreSQL schema name no other session or test uses."""
    return f"ruvon_test_{SESSION_TAG}_{next(_serial)}"


def unique_prefix() -> str:
    """Return a Redis key prefix no other session or test uses."""
    return f"ruvon-test:{SESSION_TAG}:{next(_serial)}"


async def drop_schema(dsn: str, schema: str) -> None:
    """Drop a test schema and everything in it."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def prefix_keys(url: str, prefix: str) -> list[str]:
    """Return every Redis key under ``prefix``."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, decode_responses=True)
    try:
        return [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
    finally:
        await client.aclose()


async def delete_prefix(url: str, prefix: str) -> None:
    """Delete every Redis key under ``prefix``."""
    import redis.asyncio as aioredis

    keys = await prefix_keys(url, prefix)
    client = aioredis.from_url(url)
    try:
        for start in range(0, len(keys), 500):
            await client.unlink(*keys[start : start + 500])
    finally:
        await client.aclose()


@asynccontextmanager
async def postgres_store(dsn: str, schema: str | None = None, **kwargs) -> AsyncIterator:
    """Yield an initialized PostgresPersistenceProvider in a fresh schema, dropped afterwards."""
    from ruvon_edge.implementations.persistence.postgres import PostgresPersistenceProvider

    schema = schema or unique_schema()
    store = PostgresPersistenceProvider(dsn, schema=schema, **kwargs)
    try:
        await store.initialize()
        yield store
    finally:
        await store.close()
        await drop_schema(dsn, schema)


@asynccontextmanager
async def redis_store(url: str, prefix: str | None = None, **kwargs) -> AsyncIterator:
    """Yield an initialized RedisPersistenceProvider under a fresh prefix, deleted afterwards."""
    from ruvon_edge.implementations.persistence.redis import RedisPersistenceProvider

    prefix = prefix or unique_prefix()
    store = RedisPersistenceProvider(url, prefix=prefix, **kwargs)
    try:
        await store.initialize()
        yield store
    finally:
        await store.close()
        await delete_prefix(url, prefix)

"""Every persistence backend the shared suites run against.

A backend is an id, a factory and capability flags. The factory is an async
context manager taking pytest's ``tmp_path`` and yielding a fresh, initialized,
empty provider (it may ``pytest.skip`` when its server is down). ``reopen``,
when set, yields a second provider on the same store as a given one (two
processes or workers sharing a database). To add a backend, write its factory
and append one ``Backend(...)`` to ``BACKENDS``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from ruvon_edge.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon_edge.providers.persistence import PersistenceProvider

Factory = Callable[[Path], AbstractAsyncContextManager[PersistenceProvider]]
Reopen = Callable[[PersistenceProvider], AbstractAsyncContextManager[PersistenceProvider]]


@dataclass(frozen=True)
class Backend:
    """One store under test: ``edge_sync`` = supports the edge-only methods."""

    id: str
    factory: Factory
    edge_sync: bool = False
    reopen: Reopen | None = None
    marks: tuple = ()


@asynccontextmanager
async def _opened(provider: PersistenceProvider) -> AsyncIterator[PersistenceProvider]:
    await provider.initialize()
    try:
        yield provider
    finally:
        await provider.close()


def sqlite_store(tmp_path: Path) -> AbstractAsyncContextManager[PersistenceProvider]:
    """A fresh SQLite file in the test's temporary directory."""
    return _opened(SQLitePersistenceProvider(tmp_path / "conformance.db"))


def sqlite_reopen(
    provider: PersistenceProvider,
) -> AbstractAsyncContextManager[PersistenceProvider]:
    """A second SQLite provider (its own writer connection and thread) on the same file."""
    return _opened(SQLitePersistenceProvider(provider.db_path))


def memory_store(tmp_path: Path) -> AbstractAsyncContextManager[PersistenceProvider]:
    """A fresh in-memory store."""
    return _opened(MemoryPersistenceProvider())


BACKENDS: list[Backend] = [
    Backend("sqlite", sqlite_store, edge_sync=True, reopen=sqlite_reopen),
    Backend("memory", memory_store, edge_sync=True),
]


def postgres_backend(tmp_path: Path) -> AbstractAsyncContextManager[PersistenceProvider]:
    """A fresh PostgreSQL schema, dropped afterwards (skips when the server is down)."""
    from providers.stores import POSTGRES_DSN, postgres_store, require

    return postgres_store(require("PostgreSQL", POSTGRES_DSN))


def postgres_reopen(
    provider: PersistenceProvider,
) -> AbstractAsyncContextManager[PersistenceProvider]:
    """A second PostgreSQL provider (its own pool) on the same schema."""
    from ruvon_edge.implementations.persistence.postgres import PostgresPersistenceProvider

    return _opened(PostgresPersistenceProvider(provider.dsn, schema=provider.schema))


def redis_backend(tmp_path: Path) -> AbstractAsyncContextManager[PersistenceProvider]:
    """A fresh Redis key prefix, deleted afterwards (skips when the server is down)."""
    from providers.stores import REDIS_URL, redis_store, require

    return redis_store(require("Redis", REDIS_URL))


def redis_reopen(provider: PersistenceProvider) -> AbstractAsyncContextManager[PersistenceProvider]:
    """A second Redis provider (its own connection pool) on the same prefix."""
    from ruvon_edge.implementations.persistence.redis import RedisPersistenceProvider

    return _opened(RedisPersistenceProvider(provider.url, prefix=provider.prefix))


BACKENDS += [
    Backend("postgres", postgres_backend, reopen=postgres_reopen),
    Backend("redis", redis_backend, reopen=redis_reopen),
]

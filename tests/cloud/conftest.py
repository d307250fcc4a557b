"""Both receiver stores as one fixture: a SQLite file, and PostgreSQL in a schema of its own."""

from __future__ import annotations

import uuid

import pytest

from ruvon_cloud.postgres_store import PostgresStore
from ruvon_cloud.sqlite_store import SQLiteStore


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request, tmp_path):
    """An initialised store of each kind, dropped afterwards."""
    if request.param == "sqlite":
        s = SQLiteStore(str(tmp_path / "cloud.db"))
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        s = PostgresStore(f"{dsn}?schema=ruvon_cloud_test_{uuid.uuid4().hex[:12]}")
    await s.initialize()
    yield s
    if isinstance(s, PostgresStore):
        async with s.transaction() as tx:
            await tx.execute(f'DROP SCHEMA "{s.schema}" CASCADE')
    await s.close()

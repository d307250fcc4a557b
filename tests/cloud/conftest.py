"""Both receiver stores as one fixture: a SQLite file, and PostgreSQL in a schema of its own."""

from __future__ import annotations

import pytest
from providers.stores import drop_schema, unique_schema

from ruvon_cloud.postgres_store import PostgresStore
from ruvon_cloud.sqlite_store import SQLiteStore


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request, tmp_path):
    """An initialised store of each kind, dropped afterwards."""
    if request.param == "sqlite":
        s = SQLiteStore(str(tmp_path / "cloud.db"))
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        s = PostgresStore(f"{dsn}?schema={unique_schema()}")
    await s.initialize()
    yield s
    await s.close()
    if isinstance(s, PostgresStore):
        await drop_schema(s.dsn, s.schema)

"""Engine test fixtures: a real SQLite file per test and the test step packages on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite database file."""
    return tmp_path / "edge.db"


@pytest.fixture
async def sqlite_store(db_path: Path):
    """An initialized SQLitePersistenceProvider on a real file."""
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    store = SQLitePersistenceProvider(str(db_path))
    await store.initialize()
    yield store
    await store.close()

"""Shared test plumbing: the local services as fixtures."""

from __future__ import annotations

import pytest
from services import POSTGRES_DSN, REDIS_URL, require


@pytest.fixture
def postgres_dsn() -> str:
    """The PostgreSQL DSN for tests (skips or fails when the server is down)."""
    return require("PostgreSQL", POSTGRES_DSN)


@pytest.fixture
def redis_url() -> str:
    """The Redis URL for tests (skips or fails when the server is down)."""
    return require("Redis", REDIS_URL)

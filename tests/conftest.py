"""Shared test plumbing: where the local services are, and skip-or-fail when they are absent."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

POSTGRES_DSN = os.environ.get("RUVON_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RUVON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_service(name: str, url: str) -> None:
    """Skip (or fail under RUVON_REQUIRE_SERVICES=1) unless ``url``'s host:port accepts a connection."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=2):
            return
    except OSError as exc:
        message = f"{name} is not reachable at {parsed.hostname}:{parsed.port} ({exc})"
        if os.environ.get("RUVON_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}; RUVON_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(message)


@pytest.fixture
def postgres_dsn() -> str:
    """The PostgreSQL DSN for tests (skips or fails when the server is down)."""
    require_service("PostgreSQL", POSTGRES_DSN)
    return POSTGRES_DSN


@pytest.fixture
def redis_url() -> str:
    """The Redis URL for tests (skips or fails when the server is down)."""
    require_service("Redis", REDIS_URL)
    return REDIS_URL

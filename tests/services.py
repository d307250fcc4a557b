"""Where the local services are, and skip-or-fail when one is absent (RUVON_REQUIRE_SERVICES=1 fails)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

POSTGRES_DSN = os.environ.get(
    "RUVON_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("RUVON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("RUVON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def require(name: str, url: str) -> str:
    """Return ``url`` if its server accepts connections; else skip (fail under RUVON_REQUIRE_SERVICES=1)."""
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=2
        ):
            return url
    except OSError as exc:
        message = f"{name} is not reachable at {parsed.hostname}:{parsed.port} ({exc})"
        if os.environ.get("RUVON_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}; RUVON_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(message)

"""Fixtures of the worker tests; the helpers live in ``serve_helpers`` (importable from any test dir)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
for path in (HERE, HERE / "fixtures"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from serve_helpers import NotifySocket  # noqa: E402


@pytest.fixture
def notify_socket():
    """A bound abstract-namespace notify socket."""
    sock = NotifySocket()
    yield sock
    sock.close()

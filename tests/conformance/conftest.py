"""Fixtures of the shared persistence suites: one test run per backend in ``backends.BACKENDS``."""

from __future__ import annotations

import pytest
from conformance.backends import BACKENDS


def _params(backends):
    return [pytest.param(b, id=b.id, marks=b.marks) for b in backends]


@pytest.fixture(params=_params(BACKENDS))
def backend(request):
    """The backend under test."""
    return request.param


@pytest.fixture
async def store(backend, tmp_path):
    """A fresh, initialized provider of every backend."""
    async with backend.factory(tmp_path) as provider:
        yield provider


@pytest.fixture(params=_params([b for b in BACKENDS if b.edge_sync]))
async def edge_store(request, tmp_path):
    """A fresh provider of every backend that supports the edge-only sync methods."""
    async with request.param.factory(tmp_path) as provider:
        yield provider

"""Console fixtures: one populated, served fleet per store kind (SQLite file, PostgreSQL schema)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from console.fleet import Fleet, drop_schema, populate, postgres_url, served
from services import POSTGRES_DSN, require

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fleet(request, tmp_path_factory):
    """A served console over a store filled by the real agent; the store is dropped afterwards."""
    tmp: Path = tmp_path_factory.mktemp(f"fleet-{request.param}")
    if request.param == "sqlite":
        store_url = f"sqlite:///{tmp / 'cloud.db'}"
    else:
        store_url = postgres_url(require("PostgreSQL", POSTGRES_DSN))
    try:
        with served(Fleet(tmp=tmp, store_url=store_url)) as f:
            populate(f)
            yield f
    finally:
        if request.param == "postgres":
            drop_schema(store_url)


def _no_browser(reason: str):
    if os.environ.get("RUVON_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}; RUVON_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless chromium driven by Playwright (skipped, or failed under RUVON_REQUIRE_SERVICES=1, without it)."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        _no_browser(f"no browser: {CHROMIUM} is absent (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser(
            "no browser driver: the playwright package is not installed (pip install playwright)"
        )
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()

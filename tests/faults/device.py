"""Real parts for device fault tests: the Payment workflow, the ``ruvon-edge`` CLI, a real tmpfs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

PAYMENTS = Path(__file__).parent / "payments"
YAML = PAYMENTS / "payments.yaml"
CODE = ["--module-path", str(PAYMENTS), "--allow-module", "payments_app"]
_SCRIPT = Path(sys.executable).with_name("ruvon-edge")
EDGE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ruvon_edge.cli"]


def edge(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``ruvon-edge`` with no inherited RUVON_* settings (plus ``env``)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUVON_")}
    return subprocess.run([*EDGE, *args], env={**clean, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def one_line(result: subprocess.CompletedProcess, code: int) -> str:
    """Assert exit ``code`` with exactly one stderr line and no traceback; return that line."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    return lines[0]


@asynccontextmanager
async def payments_engine(db: Path, **provider_kw):
    """A real engine on a real SQLite file with the Payment workflow registered."""
    from ruvon_edge import WorkflowEngine, WorkflowRegistry
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    if str(PAYMENTS) not in sys.path:
        sys.path.insert(0, str(PAYMENTS))
    registry = WorkflowRegistry(allowed_modules=["payments_app"])
    registry.register_file(YAML)
    store = SQLitePersistenceProvider(db, **provider_kw)
    async with WorkflowEngine(persistence=store, registry=registry) as engine:
        yield engine


@contextmanager
def tmpfs(mountpoint: Path, size: str):
    """Mount a real tmpfs of ``size`` at ``mountpoint``; skip (fail under RUVON_REQUIRE_SERVICES=1) if not permitted."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    done = None
    if shutil.which("mount"):
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
                              capture_output=True, text=True)  # fmt: skip
    if done is None or done.returncode != 0:
        why = done.stderr.strip() if done is not None else "no mount command"
        message = (
            f"cannot mount a tmpfs here ({why}); the disk-full tests need root or CAP_SYS_ADMIN"
        )
        if os.environ.get("RUVON_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}; RUVON_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(message)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)

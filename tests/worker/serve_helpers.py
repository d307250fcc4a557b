"""Helpers for running `ruvon-edge serve` as a real subprocess against a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))

SERVE = [sys.executable, "-m", "ruvon_edge.cli", "serve"]


def serve_process(
    db: Path, definitions: Path | None, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start `ruvon-edge serve` on ``db`` (fixtures importable); stdout and stderr go to ``db``.out / .err."""
    args = [*SERVE, "--db", str(db), "--allow-module", "worker_app", "--module-path", str(FIXTURES)]
    if definitions is not None:
        args += ["--definitions", str(definitions)]
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
    }
    full_env.update({"RUVON_POLL_INTERVAL": "0.05", "RUVON_ZOMBIE_THRESHOLD": "1", **(env or {})})
    with open(db.with_suffix(".out"), "ab") as out, open(db.with_suffix(".err"), "ab") as err:
        return subprocess.Popen(args, env=full_env, stdout=out, stderr=err)


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket (abstract namespace by default)."""

    def __init__(self, path: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:
            name = f"ruvon-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.sock.bind(str(path))
            self.address = str(path)
        self.messages: list[str] = []

    def wait_for(self, state: str, timeout: float = 20.0) -> list[str]:
        """Collect datagrams until one contains the line ``state``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            self.messages.append(data)
            if state in data.splitlines():
                return self.messages
        pytest.fail(f"no {state} on the notify socket within {timeout} s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


JOBS = FIXTURES / "jobs.yaml"


def pending_jobs(
    db: Path, states: list[dict], definitions: Path | None = None, workflow_type: str = "Job"
) -> list[str]:
    """Start workflows (Job by default) and run each to PENDING_ASYNC (its task queued); return their ids."""
    from ruvon_edge import WorkflowEngine, WorkflowRegistry
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    async def go() -> list[str]:
        registry = WorkflowRegistry(allowed_modules=["worker_app"])
        registry.register_file(definitions or JOBS)
        async with WorkflowEngine(SQLitePersistenceProvider(str(db)), registry) as engine:
            ids = []
            for state in states:
                wf = await engine.run((await engine.start_workflow(workflow_type, state)).id)
                assert wf.status == "PENDING_ASYNC"
                ids.append(str(wf.id))
            return ids

    return asyncio.run(go())


def statuses(db: Path) -> dict[str, tuple[str, dict]]:
    """``{workflow id: (status, state)}`` read straight from the SQLite file."""
    with sqlite3.connect(db) as conn:
        return {
            r[0]: (r[1], json.loads(r[2]))
            for r in conn.execute("SELECT id, status, state FROM workflows")
        }


def log_events(db: Path) -> list[dict]:
    """The JSON log lines `serve` wrote to ``db``.out (every line must be JSON)."""
    return [
        json.loads(line) for line in db.with_suffix(".out").read_text().splitlines() if line.strip()
    ]


def stop(proc: subprocess.Popen) -> int:
    """SIGTERM the process (kill it if it does not stop); return its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode

"""A small real fleet for console tests: `ruvon-cloud serve` in a subprocess, devices synced by the agent.

* ``Fleet``: the store URL, the served console, the operator token and each
  device's key; ``cloud()`` runs the real ``ruvon-cloud`` entry point.
* ``populate``: device databases written by the runtime's SQLite provider and
  pushed by the real ``ruvon-sync once``; one device's request is refused
  (a wrong secret), one device is registered but never heard from (stale).
* ``ask``: the store opened on its own, for the numbers pages must show.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
from sync.harness import free_port, make_finished, run_in_thread, sync_cli

from ruvon_cloud.store import Store, open_store
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon_edge.providers.persistence import Transition

T = TypeVar("T")
DECLINED = "card declined by issuer (code 05)"
HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"


@dataclass
class Device:
    device_id: str
    key_id: str
    secret: str


@dataclass
class Fleet:
    """What a console test needs to drive and check the served console."""

    tmp: Path
    store_url: str
    url: str = ""
    token: str = ""
    devices: dict[str, Device] = field(default_factory=dict)
    failed_ids: list[str] = field(default_factory=list)
    hostile_id: str = ""

    def cloud(self, *args: str) -> subprocess.CompletedProcess:
        """Run ``ruvon-cloud VERB --store URL --master-key-file ...`` and wait."""
        verb, *rest = args
        return subprocess.run(
            [sys.executable, "-m", "ruvon_cloud.cli", verb, *rest, "--store", self.store_url,
             "--master-key-file", str(self.tmp / "master-key")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def add_device(self, device_id: str) -> Device:
        out = self.cloud("add-device", device_id, "--json")
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        self.devices[device_id] = Device(device_id, doc["key_id"], doc["secret"])
        return self.devices[device_id]

    def sync(
        self, device: Device, db: Path, secret: str | None = None
    ) -> subprocess.CompletedProcess:
        """``ruvon-sync once`` for one device database (the real agent, over real HTTP)."""
        return sync_cli(
            "once", "--db", str(db), "--url", self.url, "--device-id", device.device_id,
            "--key-id", device.key_id, "--secret", secret or device.secret, "--timeout", "10",
            "--backoff-base", "0.05", "--backoff-max", "0.2",
        )  # fmt: skip


@contextmanager
def served(fleet: Fleet) -> Iterator[Fleet]:
    """``ruvon-cloud serve`` on 127.0.0.1 until the block ends (SIGTERM, then wait)."""
    port = free_port()
    fleet.url = f"http://127.0.0.1:{port}"
    log = open(fleet.tmp / "serve.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ruvon_cloud.cli", "serve", "--store", fleet.store_url,
         "--master-key-file", str(fleet.tmp / "master-key"), "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for _ in range(600):  # until it answers (or dies); bounded by attempts, not by a clock
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {(fleet.tmp / 'serve.log').read_text()}")
            try:
                if httpx.get(fleet.url + "/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield fleet
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


async def _make_failed(provider, n: int, device_tag: str) -> list[str]:
    """``n`` FAILED payments whose audit trail ends in a step error and a workflow failure."""
    ids, transitions = [], []
    for _ in range(n):
        wid = str(uuid.uuid4())
        ids.append(wid)
        audit = [
            {"event_type": "WORKFLOW_STARTED", "step_name": None, "old_status": None, "new_status": "ACTIVE", "details": {}},
            {"event_type": "STEP_COMPLETED", "step_name": "Authorize", "old_status": "ACTIVE", "new_status": "ACTIVE", "details": {"amount": 42}},
            {"event_type": "STEP_FAILED", "step_name": "Capture", "old_status": "ACTIVE", "new_status": None, "details": {"error": DECLINED}},
            {"event_type": "WORKFLOW_FAILED", "step_name": "Capture", "old_status": "ACTIVE", "new_status": "FAILED", "details": {"error": DECLINED}},
        ]  # fmt: skip
        wf = {"id": wid, "workflow_type": "Payment", "workflow_version": "1.0", "status": "FAILED",
              "state": {"amount": 42, "till": device_tag}, "current_step": "Capture",
              "idempotency_key": f"order-{wid[:8]}"}  # fmt: skip
        transitions.append(Transition(workflow=wf, expected_version=None, audit=audit))
    await provider.commit(transitions)
    return ids


async def _device_db(
    db: Path, completed: int, failed: int, tag: str, hostile: bool
) -> tuple[list[str], str]:
    async with SQLitePersistenceProvider(db) as p:
        await make_finished(p, completed, audit_per=3, workflow_type="Refund")
        failed_ids = await _make_failed(p, failed, tag)
        hostile_id = ""
        if hostile:
            (hostile_id,) = await make_finished(p, 1, audit_per=1, state={"note": HOSTILE})
    return failed_ids, hostile_id


def populate(fleet: Fleet) -> None:
    """Three tills: pos-1 (60 refunds, 3 failures, a hostile note), pos-2 (5 refunds, 1 failure,
    then a refused request), pos-3 (registered, never synced: stale)."""
    plan = {"pos-1": (60, 3, True), "pos-2": (5, 1, False)}
    for device_id, (completed, failed, hostile) in plan.items():
        device = fleet.add_device(device_id)
        db = fleet.tmp / f"{device_id}.db"
        failed_ids, hostile_id = run_in_thread(
            lambda: _device_db(db, completed, failed, device_id, hostile)  # noqa: B023 (run at once)
        )
        fleet.failed_ids += failed_ids
        fleet.hostile_id = fleet.hostile_id or hostile_id
        out = fleet.sync(device, db)
        assert out.returncode == 0, out.stderr
    run_in_thread(lambda: _device_db(fleet.tmp / "pos-2-late.db", 1, 0, "pos-2", False))
    refused = fleet.sync(fleet.devices["pos-2"], fleet.tmp / "pos-2-late.db", secret="0" * 64)
    assert refused.returncode != 0
    fleet.add_device("pos-3")
    out = fleet.cloud("add-operator", "alice", "--json")
    assert out.returncode == 0, out.stderr
    fleet.token = json.loads(out.stdout)["token"]


def ask(fleet: Fleet, question: Callable[[Store], Awaitable[T]]) -> T:
    """Ask the fleet's store, opened on its own on a fresh thread (a browser's loop may own this one)."""

    async def go() -> T:
        store = open_store(fleet.store_url)
        await store.initialize()
        try:
            return await question(store)
        finally:
            await store.close()

    return run_in_thread(go)  # type: ignore[return-value]


def postgres_url(dsn: str) -> str:
    """A PostgreSQL store URL in a schema of its own (dropped by ``drop_schema``)."""
    return f"{dsn}?schema=ruvon_console_{uuid.uuid4().hex[:12]}"


def drop_schema(store_url: str) -> None:
    """Drop a test's PostgreSQL schema."""
    import asyncpg

    dsn, _, query = store_url.partition("?schema=")

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{query}" CASCADE')
        finally:
            await conn.close()

    run_in_thread(drop)

"""``ruvon-edge demo``: a till taking card payments offline, then syncing them to a cloud receiver.

Everything runs on this machine: a reference receiver (``ruvon-cloud serve``,
SQLite store) on 127.0.0.1 with a fresh device key, a device database with
payments under a floor limit, one over it approved by a manager, one declined,
and one whose saga rolls back (a blocked card found after stock was reserved),
then one ``ruvon-sync once`` pass, and a summary of what went where.
The step functions below are the workload's own code.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field

DEVICE_ID = "pos-17"
FLOOR_LIMIT = 100.0

PAYMENT = """
workflow_type: OfflinePayment
workflow_version: "1.0"
initial_state_model_path: ruvon_edge.demo.PaymentState
saga_mode: true
steps:
  - name: ValidateCard
    function: ruvon_edge.demo.validate_card
  - name: CheckFloorLimit
    type: DECISION
    function: ruvon_edge.demo.check_floor_limit
    routes:
      - {condition: "state.amount <= state.floor_limit", next_step: ReserveStock}
      - {default: ManagerApproval}
  - name: ManagerApproval
    type: HUMAN_IN_LOOP
    input_model: ruvon_edge.demo.Approval
    function: ruvon_edge.demo.apply_approval
    routes:
      - {condition: "state.approved", next_step: ReserveStock}
      - {default: PrintReceipt}
  - name: ReserveStock
    function: ruvon_edge.demo.reserve_stock
    compensate_function: ruvon_edge.demo.release_stock
  - name: CaptureOffline
    function: ruvon_edge.demo.capture_offline
    compensate_function: ruvon_edge.demo.void_capture
  - name: PrintReceipt
    function: ruvon_edge.demo.print_receipt
"""


class PaymentState(BaseModel):
    """One card payment at the till."""

    payment_id: str
    amount: float = Field(gt=0)
    card_token: str
    floor_limit: float = FLOOR_LIMIT
    card_brand: str | None = None
    approved: bool | None = None
    approver: str | None = None
    stock_reserved: bool = False
    captured: bool = False
    receipt: str | None = None


class Approval(BaseModel):
    """A manager's decision on a payment above the floor limit."""

    approved: bool
    approver: str


class CardBlocked(RuntimeError):
    """The card is on the device's offline blocklist."""


def validate_card(state: PaymentState, context) -> dict:
    brand = {"4": "VISA", "5": "MASTERCARD"}.get(state.card_token[4:5], "OTHER")
    return {"card_brand": brand}


def check_floor_limit(state: PaymentState, context) -> dict:
    return {"approved": True} if state.amount <= state.floor_limit else {}


def apply_approval(state: PaymentState, context, approved: bool, approver: str) -> dict:
    return {"approved": approved, "approver": approver}


def reserve_stock(state: PaymentState, context) -> dict:
    return {"stock_reserved": True}


def release_stock(state: PaymentState, context) -> dict:
    return {"stock_reserved": False}


def capture_offline(state: PaymentState, context) -> dict:
    if state.card_token.startswith("blk_"):
        raise CardBlocked(f"card {state.card_token[:8]}… is on the offline blocklist")
    return {"captured": True}


def void_capture(state: PaymentState, context) -> dict:
    return {"captured": False}


def print_receipt(state: PaymentState, context) -> dict:
    verdict = "APPROVED" if state.approved else "DECLINED"
    return {"receipt": f"{state.payment_id} {state.amount:.2f} EUR {state.card_brand} {verdict}"}


def _payments(count: int) -> list[dict]:
    rng = random.Random(17)
    payments = [
        {
            "payment_id": f"P{i:04d}",
            "amount": round(rng.uniform(2, 95), 2),
            "card_token": f"tok_{rng.choice('45')}{i:07d}",
        }
        for i in range(count)
    ]
    payments += [
        {
            "payment_id": "P-BIG-1",
            "amount": 240.0,
            "card_token": "tok_40000001",
        },  # manager approves
        {
            "payment_id": "P-BIG-2",
            "amount": 980.0,
            "card_token": "tok_50000002",
        },  # manager declines
        {"payment_id": "P-BLOCK", "amount": 35.5, "card_token": "blk_40000003"},  # saga rolls back
    ]
    return payments


async def _run_device(db: Path, count: int) -> Counter:
    from ruvon_edge.compose import WorkflowEngine
    from ruvon_edge.definition.registry import WorkflowRegistry
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    registry = WorkflowRegistry(allowed_modules=["ruvon_edge.demo"])
    registry.register_yaml(PAYMENT, source="demo")
    outcome: Counter = Counter()
    async with WorkflowEngine(
        persistence=SQLitePersistenceProvider(str(db)), registry=registry
    ) as engine:
        for data in _payments(count):
            wf = await engine.start_workflow(
                "OfflinePayment", data, idempotency_key=data["payment_id"]
            )
            wf = await engine.run(wf.id)
            if wf.status == "WAITING_HUMAN":
                approve = data["payment_id"] == "P-BIG-1"
                wf = await engine.resume(wf.id, {"approved": approve, "approver": "manager-3"})
                outcome["approved by a manager" if approve else "declined by a manager"] += 1
            elif wf.status == "COMPLETED":
                outcome["captured offline"] += 1
            outcome[wf.status] += 1
    return outcome


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the receiver exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v1/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the receiver at {url} did not become healthy in {seconds:.0f} s")


def _cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300
    )


async def _receiver_counts(store_url: str) -> dict:
    from ruvon_cloud.store import open_store

    store = open_store(store_url)
    await store.initialize()
    try:
        return await store.counts(DEVICE_ID)
    finally:
        await store.close()


def main(
    workdir: str | None = None, payments: int = 20, as_json: bool = False, keep: bool = False,
    db: str | None = None,
) -> int:  # fmt: skip
    """Run the demo; return the exit code (0 when every payment reached the cloud).

    Its files go to ``workdir`` (kept), else to a temporary directory removed at
    exit unless ``keep``. ``db`` puts the device database elsewhere; it must not
    exist yet, since the demo's payments would meet an older run's idempotency keys.
    """
    if db is not None and Path(db).exists():
        print(f"ruvon-edge: error: --db {db}: already exists; the demo needs a new device database "
              "(give a new path, or leave --db out)", file=sys.stderr)  # fmt: skip
        return 2
    work = Path(workdir or tempfile.mkdtemp(prefix="ruvon-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    files_kept = workdir is not None or keep
    try:
        return _run(work, Path(db) if db else work / "edge.db", payments, as_json, files_kept)
    finally:
        if not files_kept:
            shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, db: Path, payments: int, as_json: bool, files_kept: bool) -> int:
    store_url, key_file = f"sqlite:///{work / 'cloud.db'}", str(work / "cloud.key")
    added = _cli(
        "ruvon_cloud.cli",
        "add-device",
        DEVICE_ID,
        "--store",
        store_url,
        "--master-key-file",
        key_file,
        "--json",
    )
    if added.returncode != 0:
        print(
            f"ruvon-edge demo: could not create a device key: {added.stderr.strip()}",
            file=sys.stderr,
        )
        return 1
    device = json.loads(added.stdout)
    secret_file = work / "device.secret"
    secret_file.write_text(device["secret"])
    secret_file.chmod(0o600)
    url = f"http://127.0.0.1:{_free_port()}"
    receiver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ruvon_cloud.cli",
            "serve",
            "--store",
            store_url,
            "--master-key-file",
            key_file,
            "--host",
            "127.0.0.1",
            "--port",
            url.rsplit(":", 1)[1],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_healthy(url, receiver)
        started = time.perf_counter()
        outcome = asyncio.run(_run_device(db, payments))
        device_seconds = time.perf_counter() - started
        synced = _cli(
            "sync_agent.cli",
            "once",
            "--db",
            str(db),
            "--url",
            url,
            "--device-id",
            DEVICE_ID,
            "--key-id",
            device["key_id"],
            "--secret-file",
            str(secret_file),
            "--json",
        )
        if synced.returncode != 0:
            print(f"ruvon-edge demo: sync failed: {synced.stderr.strip()}", file=sys.stderr)
            return 1
        sync = json.loads(synced.stdout)
        cloud = asyncio.run(_receiver_counts(store_url))
    finally:
        receiver.send_signal(signal.SIGTERM)
        try:
            receiver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            receiver.kill()
    left, kept = _left_on_device(db)
    total = sum(v for k, v in outcome.items() if k.isupper())
    summary = {
        "workdir": str(work),
        "receiver": url,
        "device_id": DEVICE_ID,
        "payments": total,
        "outcomes": dict(outcome),
        "device_seconds": round(device_seconds, 3),
        "sync": sync,
        "left_on_device": left,
        "failed_kept_on_device": kept,
        "receiver_totals": cloud,
        "files_kept": files_kept,
        "look": _look_commands(db, store_url),
    }
    print(json.dumps(summary, indent=2) if as_json else _render(summary))
    return 0 if left == 0 and cloud.get("workflows", 0) >= total else 1


def _left_on_device(db: Path) -> tuple[int, int]:
    """Workflows not yet synced, and synced failures the device keeps for a while (README: retention)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT count(*) FILTER (WHERE synced_at IS NULL), count(*) FILTER (WHERE synced_at IS NOT NULL) "
            "FROM workflows"
        ).fetchone()


def _render(s: dict) -> str:
    o = s["outcomes"]
    sync = s["sync"]
    return "\n".join(
        [
            f"Ruvon Edge demo: till {s['device_id']} -> receiver {s['receiver']} (SQLite store)",
            f"  payments run      {s['payments']} in {s['device_seconds']:.2f} s: {o.get('captured offline', 0)} captured "
            f"offline under the {FLOOR_LIMIT:.0f} EUR floor limit, {o.get('approved by a manager', 0)} approved and "
            f"{o.get('declined by a manager', 0)} declined by a manager, {o.get('FAILED_ROLLED_BACK', 0)} rolled back (blocked card)",
            f"  synced            {sync.get('workflows_acked', '?')} workflows and {sync.get('audit_logs_acked', '?')} audit rows "
            f"in {sync.get('batches', '?')} batch(es), {sync.get('quarantined', 0)} quarantined",
            # the agent's "deleted" counts every acked workflow settled on the device: deleted, or a
            # synced failure kept for its retention period
            f"  deleted locally   {sync.get('deleted', 0) - s['failed_kept_on_device']} (left unsynced on the device: "
            f"{s['left_on_device']}; synced failures kept for inspection and retry: {s['failed_kept_on_device']})",
            f"  receiver totals   {s['receiver_totals'].get('workflows')} workflows, {s['receiver_totals'].get('audit_logs')} audit rows",
            f"  files             {s['workdir']}"
            + ("" if s["files_kept"] else " (removed; --keep keeps them)"),
            "look at what was synced"
            + (":" if s["files_kept"] else " (after a run with --keep or --workdir DIR):"),
            *(f"  {command}" for command in s["look"]),
        ]
    )


def _look_commands(db: Path, store_url: str) -> list[str]:
    """The commands that show what the device kept and what the receiver stored."""
    store = ["--store", store_url]
    return [
        shlex.join(["ruvon-edge", "list", "--db", str(db)]),
        shlex.join(["ruvon-sync", "status", "--db", str(db)]),
        shlex.join(["ruvon-cloud", "workflows", "--device", DEVICE_ID, *store]),
        shlex.join(["ruvon-cloud", "show", "ID", "--audit", *store]),
    ]


if __name__ == "__main__":
    sys.exit(main(os.environ.get("RUVON_DEMO_DIR")))

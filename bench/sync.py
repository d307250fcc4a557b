"""Sync benchmark: N finished workflows x 5 audit rows drained into the receiver on 127.0.0.1.

    python bench/sync.py                  # 100,000 workflows (the README figures)
    python bench/sync.py --workflows 5000 # a quick run

Prints workflows/s and records/s end to end, the agent's RSS growth during the
drain, bytes on the wire with and without gzip, and whether a workflow
finished mid-drain was delivered by that same drain (not starved). The
receiver is `ruvon-cloud serve` (SQLite store) in its own process; the agent
runs `SyncAgent.drain()` in a child process that samples its own RSS.
Targets: >= 5,000 workflows/s, RSS growth <= 20 MB.
"""

from __future__ import annotations

import os
import sys

# Run as a script, this folder comes first on sys.path, and bench/queue.py would shadow the
# stdlib `queue` (which the SQLite provider's thread needs): drop it before any other import.
if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    del sys.path[0]

import argparse
import asyncio
import json
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon_edge.providers.persistence import Transition


def _rss_pair() -> tuple[int, int]:
    """(VmRSS, RssAnon) in kB from one read of /proc/self/status (the sampler runs every 10 ms)."""
    with open("/proc/self/status", "rb") as fh:
        text = fh.read()
    rss, anon = (int(text.split(key, 1)[1].split(None, 1)[0]) for key in (b"VmRSS:", b"RssAnon:"))
    return rss, anon


async def fill(db: Path, n: int, audit_per: int) -> list[str]:
    """Create ``n`` COMPLETED workflows with ``audit_per`` audit rows each."""
    ids = []
    async with SQLitePersistenceProvider(db) as p:
        for start in range(0, n, 1000):
            batch = []
            for _ in range(min(1000, n - start)):
                wid = str(uuid.uuid4())
                ids.append(wid)
                audit = [{"event_type": "STEP_EXECUTED", "step_name": f"step{i}", "old_status": "ACTIVE",
                          "new_status": "ACTIVE", "details": {"ms": i}} for i in range(audit_per)]  # fmt: skip
                wf = {"id": wid, "workflow_type": "CardPayment", "workflow_version": "1.0", "status": "COMPLETED",
                      "state": {"amount_cents": 1250, "currency": "EUR", "card": "****4242", "approved": True},
                      "current_step": "Settle"}  # fmt: skip
                batch.append(Transition(workflow=wf, expected_version=None, audit=audit))
            await p.commit(batch)
    return ids


async def agent_child(args: argparse.Namespace) -> None:
    """Run one drain with the real agent; print its report and RSS figures as JSON."""
    from ruvon_edge._logs import configure_json_logs
    from sync_agent.agent import SyncAgent
    from sync_agent.settings import SyncSettings
    from sync_agent.transport import Transport

    configure_json_logs("info", sys.stderr)  # JSON events to stderr, as in production
    settings = SyncSettings(
        db=args.db, url=args.url, device_id="bench-1", key_id=args.key_id, secret=args.secret
    )
    peak = list(_rss_pair())
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            rss, anon = _rss_pair()
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], anon)

    provider = SQLitePersistenceProvider(settings.db)
    async with provider, Transport(settings) as transport:
        agent = SyncAgent(provider, settings, transport)
        await provider.sync_backlog()  # warm: connections open, schema read
        baseline, anon_baseline = _rss_pair()
        threading.Thread(target=sample, daemon=True).start()
        report = await agent.drain()
        done.set()
        rss, anon = _rss_pair()
    print(json.dumps({"ok": report.ok, "errors": report.errors, "deleted": report.deleted, "audit": report.audit_acked,
                      "batches": report.batches, "seconds": report.duration_s, "body_bytes": report.body_bytes,
                      "wire_bytes": report.wire_bytes, "rss_baseline_kb": baseline, "rss_peak_kb": max(peak[0], rss),
                      "anon_baseline_kb": anon_baseline, "anon_peak_kb": max(peak[1], anon)}))  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=100_000)
    parser.add_argument("--audit", type=int, default=5)
    parser.add_argument("--agent-child", action="store_true", help=argparse.SUPPRESS)
    for name in ("--db", "--url", "--key-id", "--secret"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent_child:
        asyncio.run(agent_child(args))
        return
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="ruvon-bench-sync-") as tmp:
        tmp_path = Path(tmp)
        db, store = tmp_path / "edge.db", f"sqlite:///{tmp_path / 'cloud.db'}"
        t0 = time.perf_counter()
        asyncio.run(fill(db, args.workflows, args.audit))
        print(
            f"setup: {args.workflows} workflows x {args.audit} audit rows in {time.perf_counter() - t0:.1f}s"
        )
        cloud = [sys.executable, "-m", "ruvon_cloud.cli"]
        key = json.loads(subprocess.run([*cloud, "add-device", "bench-1", "--store", store, "--json"],
                                        capture_output=True, text=True, check=True).stdout)  # fmt: skip
        port = _free_port()
        receiver = subprocess.Popen([*cloud, "serve", "--store", store, "--port", str(port), "--log-level", "error"],
                                    stderr=subprocess.DEVNULL, env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"})  # fmt: skip
        try:
            _wait_port(port)
            child = subprocess.Popen(
                [sys.executable, __file__, "--agent-child", "--db", str(db), "--url", f"http://127.0.0.1:{port}",
                 "--key-id", key["key_id"], "--secret", key["secret"]],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            newest = _finish_one_mid_drain(db, delay=min(1.0, args.workflows / 20_000))
            out, err = child.communicate()
            if child.returncode != 0:
                raise SystemExit(f"agent child failed ({child.returncode}):\n{err[-3000:]}")
            result = json.loads(out)
        finally:
            receiver.terminate()
            receiver.wait(30)
        delivered = _stored(tmp_path / "cloud.db", newest)
    _report(args, result, delivered)


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("receiver did not start") from None
            time.sleep(0.05)


def _finish_one_mid_drain(db: Path, delay: float) -> str:
    time.sleep(delay)
    return asyncio.run(fill(db, 1, 5))[0]


def _stored(cloud_db: Path, wid: str) -> bool:
    import sqlite3

    with sqlite3.connect(cloud_db) as conn:
        return conn.execute("SELECT 1 FROM workflows WHERE id = ?", (wid,)).fetchone() is not None


def _report(args, r: dict, newest_delivered: bool) -> None:
    n = r["deleted"]
    secs = r["seconds"]
    records = n + r["audit"]
    growth_mb = (r["rss_peak_kb"] - r["rss_baseline_kb"]) / 1024
    print(
        f"drained:     {n} workflows + {r['audit']} audit rows in {secs:.2f}s, {r['batches']} batches, ok={r['ok']}"
    )
    print(
        f"throughput:  {n / secs:,.0f} workflows/s, {records / secs:,.0f} records/s end to end (target >= 5,000 workflows/s)"
    )
    print(
        f"agent RSS:   {r['rss_baseline_kb'] / 1024:.1f} MB -> peak {r['rss_peak_kb'] / 1024:.1f} MB, growth {growth_mb:.1f} MB (target <= 20 MB)"
    )
    anon_mb = (r["anon_peak_kb"] - r["anon_baseline_kb"]) / 1024
    print(
        f"             of which heap (RssAnon): {anon_mb:.1f} MB; the rest is SQLite file pages mapped in"
    )
    print(
        f"wire bytes:  {r['body_bytes']:,} uncompressed, {r['wire_bytes']:,} sent gzipped ({r['wire_bytes'] / max(1, r['body_bytes']):.1%})"
    )
    print(
        f"starvation:  workflow finished mid-drain delivered by the same drain: {'yes' if newest_delivered else 'NO'}"
    )
    if r["errors"]:
        print("errors:", *r["errors"], sep="\n  ")


if __name__ == "__main__":
    main()

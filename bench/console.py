"""Console benchmark: page latency with 1,000 devices and 1,000,000 workflows on PostgreSQL.

    python bench/console.py                       # 1,000 devices x 1,000 workflows, 2 audit rows each
    python bench/console.py --devices 100 --per-device 1000   # a quick run (100,000 workflows)

Fills a fresh schema on the local server (RUVON_TEST_POSTGRES_DSN, default
postgresql://postgres@127.0.0.1:5432/test) by COPY -- indexes dropped during the
load and rebuilt after, as a bulk load would -- then serves it with the real
`ruvon-cloud serve` on 127.0.0.1 and times each console page over HTTP with an
operator token: one warm-up request, then --requests timed ones; prints the
median and p95 per page. The schema is dropped at the end (--keep keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from ruvon_cloud import schema
from ruvon_cloud.postgres_store import PostgresStore

DSN = os.environ.get("RUVON_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
TYPES = ["Payment", "Refund", "Settlement", "StockCount", "PriceUpdate"]
STATUSES = ["COMPLETED"] * 95 + ["FAILED"] * 3 + ["FAILED_ROLLED_BACK", "CANCELLED"]
DAY = 86400.0


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z"


def _workflows(device: str, n: int, now: float, rng: random.Random, keep: list) -> list[tuple]:
    rows = []
    for i in range(n):
        received = now - rng.random() * 30 * DAY
        created = received - rng.random() * 600
        wid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        status = rng.choice(STATUSES)
        key = f"order-{device}-{i}" if i % 2 == 0 else None
        values = {"id": wid, "workflow_type": rng.choice(TYPES), "workflow_version": "1.0",
                  "status": status, "state": json.dumps({"amount": rng.randint(1, 500), "till": device}),
                  "current_step": "Done", "parent_id": None, "idempotency_key": key,
                  "created_at": _iso(created), "updated_at": _iso(received - 1),
                  "completed_at": _iso(received - 1), "sync_version": 1}  # fmt: skip
        rows.append(
            (device, *(values[f] for f in schema.WF_FIELDS), f"batch-{device}-{i // 100}",
             received, "0" * 64, 0)
        )  # fmt: skip
        if len(keep) < 50:
            keep.append((device, wid, key, created))
    return rows


def _audits(wf_rows: list[tuple], per: int) -> list[tuple]:
    out = []
    at = 1 + schema.WF_FIELDS.index("created_at")
    for row in wf_rows:
        device, wid, received = row[0], row[1], row[-3]
        for j in range(per):
            event = "WORKFLOW_STARTED" if j == 0 else "WORKFLOW_COMPLETED"
            details = "{}" if j == 0 else json.dumps({"step": "Done"})
            out.append(
                (
                    device,
                    f"{wid}-{j}",
                    wid,
                    event,
                    "Done",
                    None,
                    None,
                    details,
                    row[at],
                    row[-4],
                    received,
                )
            )
    return out


async def fill(url: str, devices: int, per_device: int, audit_per: int) -> list[tuple]:
    """Create the schema through the store, bulk-load it, rebuild the indexes; return sample ids."""
    import asyncpg

    store = PostgresStore(url)
    await store.initialize()
    await store.close()
    schema_name = store.schema
    conn = await asyncpg.connect(DSN, server_settings={"search_path": schema_name})
    rng, now, keep = random.Random(7), time.time(), []
    try:
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 "
            "AND tablename IN ('workflows', 'audit_logs') AND indexname NOT LIKE '%_pkey'",
            schema_name,
        )
        for ix in indexes:
            await conn.execute(f'DROP INDEX "{ix["indexname"]}"')
        started = time.perf_counter()
        wf_cols = [c.strip() for c in schema.WF_COLS.split(",")] + ["conflict"]
        au_cols = [c.strip() for c in schema.AUDIT_COLS.split(",")]
        registry = []
        for d in range(devices):
            device = f"till-{d:04d}"
            wf = _workflows(device, per_device, now, rng, keep if d % 97 == 0 else [])
            await conn.copy_records_to_table("workflows", records=wf, columns=wf_cols)
            await conn.copy_records_to_table(
                "audit_logs", records=_audits(wf, audit_per), columns=au_cols
            )
            last_seen = now - rng.random() * (3 * DAY if d % 20 == 0 else 1800)
            registry.append(
                (device, now - 40 * DAY, now - 30 * DAY, last_seen, f"batch-{device}-last", last_seen,
                 per_device, per_device * audit_per, rng.randint(0, 40), rng.choice([0, 0, 0, 2]))
            )  # fmt: skip
            if d % 100 == 99:
                print(f"  loaded {(d + 1) * per_device:,} workflows", file=sys.stderr, flush=True)
        await conn.copy_records_to_table(
            "devices", records=registry,
            columns=["device_id", "registered_at", "first_seen_at", "last_seen_at", "last_batch_id",
                     "last_batch_at", "workflows", "audit_logs", "backlog", "quarantined"],
        )  # fmt: skip
        refusals = [(f"till-{rng.randrange(devices):04d}", now - rng.random() * 30 * DAY, 401,
                     "bad signature", None) for _ in range(5000)]  # fmt: skip
        await conn.copy_records_to_table(
            "refusals", records=refusals, columns=["device_id", "at", "status", "reason", "key_id"]
        )
        loaded = time.perf_counter() - started
        for ix in indexes:
            await conn.execute(ix["indexdef"])
        await conn.execute("ANALYZE")
        print(f"loaded in {loaded:.0f} s, indexes rebuilt and analysed in "
              f"{time.perf_counter() - started - loaded:.0f} s", file=sys.stderr)  # fmt: skip
    finally:
        await conn.close()
    return keep


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cloud(*args: str, key: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruvon_cloud.cli", *args, "--master-key-file", str(key)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip


def measure(
    url: str, samples: list[tuple], requests: int, key: Path
) -> list[tuple[str, list[float]]]:
    """Serve the schema and time each page; return ``(page, seconds)`` per page."""
    name = f"bench-{uuid.uuid4().hex[:6]}"
    token = json.loads(_cloud("add-operator", name, "--store", url, "--json", key=key).stdout)[
        "token"
    ]
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ruvon_cloud.cli", "serve", "--store", url, "--port", str(port),
         "--master-key-file", str(key), "--log-level", "warning"],
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    device, wid, key, created = samples[len(samples) // 2]
    since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * DAY))
    pages = [
        ("fleet overview (every device)", "/console"),
        ("one device (chart, counts, latest)", f"/console/devices/{device}"),
        ("search: newest, page 1", "/console/workflows"),
        ("search: newest, page 20", "/console/workflows?page=20"),
        ("search: status FAILED*", "/console/workflows?status=FAILED%2A"),
        ("search: device + type", f"/console/workflows?device={device}&type=Refund"),
        ("search: type + last 2 days", f"/console/workflows?type=Payment&since={since}"),
        ("search: workflow id", f"/console/workflows?id={wid}"),
        ("search: idempotency key", f"/console/workflows?key={key}"),
        ("one workflow (timeline)", f"/console/devices/{device}/workflows/{wid}"),
        ("failures", "/console/failures"),
    ]
    out = []
    try:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as client:
            for _ in range(600):
                try:
                    client.get("/v1/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            for name, path in pages:
                assert client.get(path).status_code == 200, path  # warm-up (and a check)
                times = []
                for _ in range(requests):
                    started = time.perf_counter()
                    r = client.get(path)
                    times.append(time.perf_counter() - started)
                    assert r.status_code == 200, (path, r.status_code)
                out.append((name, times))
    finally:
        proc.terminate()
        proc.wait(30)
    return out


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--per-device", type=int, default=1000)
    p.add_argument("--audit-per", type=int, default=2)
    p.add_argument("--requests", type=int, default=9)
    p.add_argument("--keep", action="store_true", help="keep the schema (its name is printed)")
    p.add_argument(
        "--reuse", metavar="SCHEMA", help="measure a schema kept by an earlier --keep run"
    )
    args = p.parse_args()
    schema_name = args.reuse or f"ruvon_console_bench_{uuid.uuid4().hex[:8]}"
    url = f"{DSN}?schema={schema_name}"
    key = Path(tempfile.gettempdir()) / f"{schema_name}.master-key"  # kept with the schema
    print(f"schema {schema_name}: {args.devices:,} devices x {args.per_device:,} workflows "
          f"x {args.audit_per} audit rows", file=sys.stderr)  # fmt: skip
    try:
        if args.reuse:
            samples = asyncio.run(_samples(schema_name))
        else:
            samples = asyncio.run(fill(url, args.devices, args.per_device, args.audit_per))
        results = measure(url, samples, args.requests, key)
        total = args.devices * args.per_device
        print(f"\nconsole page latency, {args.devices:,} devices, {total:,} workflows, "
              f"{total * args.audit_per:,} audit rows (PostgreSQL, {args.requests} requests each; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")  # fmt: skip
        print("| page | median ms | p95 ms |\n|---|---:|---:|")
        for name, times in results:
            print(f"| {name} | {statistics.median(times) * 1000:.0f} | {_p95(times) * 1000:.0f} |")
    finally:
        if not (args.keep or args.reuse):
            asyncio.run(_drop(schema_name))
            key.unlink(missing_ok=True)
    return 0


async def _samples(schema_name: str) -> list[tuple]:
    """Workflows to open in a reused schema (as ``fill`` would have kept)."""
    import asyncpg

    conn = await asyncpg.connect(DSN, server_settings={"search_path": schema_name})
    try:
        rows = await conn.fetch(
            "SELECT device_id, id, idempotency_key, created_at FROM workflows "
            "WHERE idempotency_key IS NOT NULL LIMIT 50"
        )
    finally:
        await conn.close()
    return [tuple(r) for r in rows]


async def _drop(schema_name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_name}" CASCADE')
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())

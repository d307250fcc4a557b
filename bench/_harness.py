"""Shared benchmark helpers; stdlib only, so both engines' interpreters can import it.

A runner (``_edge_runner.py`` or ``_sdk_runner.py``) supplies ``one(i)``: start
workflow ``i``, run it to the end, return its id. ``drive`` times it
sequentially or ``concurrency`` at a time (``asyncio.gather`` over batches),
and turns the per-step stamps of ``bench_steps`` into step latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import bench_steps

One = Callable[[int], Awaitable[str]]
WARMUP = 20


def runner_args() -> argparse.Namespace:
    """Parse the options every runner takes."""
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument(
        "--synchronous", default="NORMAL", help="NORMAL, FULL or 'default' (the engine's own)"
    )
    p.add_argument(
        "--count-commits",
        type=int,
        default=0,
        metavar="M",
        help="after timing, count commits over M workflows",
    )
    p.add_argument(
        "--rss-only", action="store_true", help="keep no latency samples (for a clean RSS figure)"
    )
    p.add_argument("--backend", default="sqlite")
    p.add_argument("--dsn", default="")
    return p.parse_args()


def percentile(samples: list[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) by nearest rank."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def drive(one: One, n: int, concurrency: int, keep_samples: bool = True) -> dict:
    """Run ``n`` workflows; return rate and step-latency figures."""
    latencies: list[float] = []

    async def timed(i: int) -> None:
        wid = await one(i)
        end = time.perf_counter()
        stamps = bench_steps.STAMPS.pop(str(wid), [])
        if keep_samples:
            marks = [*stamps, end]
            latencies.extend(b - a for a, b in zip(marks, marks[1:], strict=False))

    for i in range(WARMUP):
        await timed(-1 - i)
    latencies.clear()
    gc.collect()
    started = time.perf_counter()
    if concurrency <= 1:
        for i in range(n):
            await timed(i)
    else:
        for base in range(0, n, concurrency):
            await asyncio.gather(*(timed(i) for i in range(base, min(n, base + concurrency))))
    seconds = time.perf_counter() - started
    return {
        "workflows": n,
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "wf_per_s": round(n / seconds, 1),
        "step_p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "step_p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
    }


class CommitCounter:
    """Count commits on every open ``sqlite3`` connection through its trace callback.

    A commit is an explicit ``COMMIT``/``END`` or a write executed outside a
    transaction (autocommit). The callback is installed on the connection's own
    thread when it has one (aiosqlite), since sqlite3 checks the thread.
    """

    def __init__(self) -> None:
        self.commits = 0
        self.connections = 0
        self._in_tx: dict[int, bool] = {}

    def _callback(self, key: int) -> Callable[[str], None]:
        def trace(sql: str) -> None:
            word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
            if word == "BEGIN":
                self._in_tx[key] = True
            elif word in ("COMMIT", "END"):
                self._in_tx[key] = False
                self.commits += 1
            elif word == "ROLLBACK":
                self._in_tx[key] = False
            elif word in ("INSERT", "UPDATE", "DELETE", "REPLACE") and not self._in_tx.get(key):
                self.commits += 1

        return trace

    async def install(self, callback_factory=None) -> None:
        """Attach to every live sqlite3 connection (directly or through aiosqlite)."""
        owners = {}
        for obj in gc.get_objects():
            conn = getattr(obj, "_conn", None)
            if isinstance(conn, sqlite3.Connection) and hasattr(obj, "_execute"):
                owners[id(conn)] = obj
        for obj in gc.get_objects():
            if not isinstance(obj, sqlite3.Connection):
                continue
            cb = self._callback(id(obj))
            try:
                if id(obj) in owners:
                    await owners[id(obj)]._execute(obj.set_trace_callback, cb)
                else:
                    obj.set_trace_callback(cb)
                self.connections += 1
            except sqlite3.ProgrammingError:
                continue


def rss_mb() -> dict:
    """Return this process's current and peak resident set size in MB (Linux)."""
    out = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out["rss_mb" if line.startswith("VmRSS") else "peak_rss_mb"] = round(
                        int(line.split()[1]) / 1024, 1
                    )
    except OSError:
        import resource

        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def emit(result: dict) -> None:
    """Print the runner's one JSON line (the parent reads the last line of stdout)."""
    print(json.dumps(result), file=sys.__stdout__, flush=True)


def median(values: list[float]) -> float:
    """Median, rounded for display."""
    return round(statistics.median(values), 2)

"""Benchmark Ruvon Edge against ruvon-sdk 0.1.5 and raw sqlite3, in one run.

Usage::

    python bench/engine.py [--n 2000] [--quick] [--backend sqlite|postgres|redis] [--json]

What it measures (every engine run is a fresh subprocess on a fresh database
file in a temp dir; see ``bench/README.md``):

* a 3-step workflow (small pydantic state, trivial sync steps; ``bench_steps.py``)
  run ``--n`` times sequentially and 50 at a time (``asyncio.gather`` per batch):
  workflows/s, step latency p50/p99 (gap between consecutive step starts, and
  from the last step to ``run`` returning), SQLite commits per workflow (the
  provider's ``commit_count``; for ruvon-sdk a ``sqlite3`` trace callback);
* RSS after 10,000 workflows (VmRSS of a fresh process, 50 at a time);
* import time of ``ruvon_edge`` (engine, registry, SQLite provider) against
  ``pydantic + aiosqlite + yaml`` alone: median of fresh interpreters;
* raw ``sqlite3`` single-row commits/s, WAL, ``synchronous=NORMAL``, on a file;
* ruvon-sdk 0.1.5, installed by this script into ``bench/.venv-ruvon-sdk``, on the
  same workload with ``synchronous=NORMAL`` and at its own default;

then prints the ratios against the targets as a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sdk_venv

HERE = Path(__file__).resolve().parent
DEFAULT_DSN = {
    "postgres": os.environ.get(
        "RUVON_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
    ),
    "redis": os.environ.get("RUVON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
}
THIRD_PARTY = (
    "httpx",
    "jinja2",
    "structlog",
    "tenacity",
    "asyncpg",
    "redis",
    "celery",
    "opentelemetry",
    "uvicorn",
)
IMPORT_OURS = (
    "import ruvon_edge; from ruvon_edge import WorkflowEngine, WorkflowRegistry; "
    "from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider"
)
IMPORT_BASE = "import pydantic, aiosqlite, yaml; from pydantic import BaseModel"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def sdk_python() -> Path | None:
    """Return the ruvon-sdk venv's interpreter, creating the venv on first use; None if impossible."""
    if sdk_venv.installed_python() is None:
        log(f"installing {sdk_venv.SDK_PIN} into {sdk_venv.SDK_VENV} ...")
    try:
        return sdk_venv.ensure_sdk_python()
    except RuntimeError as exc:
        log(str(exc)[:300])
        return None


def run_runner(python: Path | str, script: str, db: Path, **opts) -> dict:
    """Run one measurement in a fresh process; return its JSON result."""
    cmd = [str(python), str(HERE / script), "--db", str(db)]
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        cmd += [flag] if value is True else [] if value is False else [flag, str(value)]
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"{script} failed: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def raw_sqlite_commits_per_s(path: Path, seconds: float = 2.0) -> float:
    """Single-row INSERT + COMMIT in a loop on a WAL file with synchronous=NORMAL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (v) VALUES (?)", ("x" * 64,))
            conn.execute("COMMIT")
        n += 100
    conn.close()
    return round(n / elapsed, 1)


def import_ms(python: Path | str, statement: str, runs: int) -> tuple[float, list[str]]:
    """Median in-process import time over fresh interpreters; also which heavy libraries got loaded."""
    probe = (
        "import time, sys, json; t = time.perf_counter(); "
        f"{statement}; d = time.perf_counter() - t; "
        f"print(json.dumps([d * 1000, sorted({{m.split('.')[0] for m in sys.modules}} & set({list(THIRD_PARTY)!r}))]))"
    )
    times, loaded = [], []
    for _ in range(runs):
        out = subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, check=True, cwd=HERE
        )
        ms, loaded = json.loads(out.stdout)
        times.append(ms)
    times.sort()
    return round(times[len(times) // 2], 1), loaded


def measure(args: argparse.Namespace) -> dict:
    n = 300 if args.quick else args.n
    rss_n = 1000 if args.quick else 10_000
    import_runs = 3 if args.quick else 9
    res: dict = {
        "n": n,
        "backend": args.backend,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    with tempfile.TemporaryDirectory(prefix="ruvon-bench-") as tmp:
        work = Path(tmp)
        db = iter(work / f"run{i}.db" for i in range(100))
        edge = {"backend": args.backend, "dsn": DEFAULT_DSN.get(args.backend, "")}
        log(f"ruvon-edge ({args.backend}): {n} sequential, then 50 concurrent")
        res["edge_seq"] = run_runner(
            sys.executable, "_edge_runner.py", next(db), n=n, count_commits=100, **edge
        )
        res["edge_c50"] = run_runner(
            sys.executable, "_edge_runner.py", next(db), n=n, concurrency=50, **edge
        )
        log(f"ruvon-edge: RSS after {rss_n} workflows")
        res["edge_rss"] = run_runner(
            sys.executable,
            "_edge_runner.py",
            next(db),
            n=rss_n,
            concurrency=50,
            rss_only=True,
            **edge,
        )
        log("raw sqlite3 commits/s")
        res["raw_sqlite_commits_per_s"] = raw_sqlite_commits_per_s(next(db))
        log("import times")
        res["import_ms_edge"], res["import_loaded_edge"] = import_ms(
            sys.executable, IMPORT_OURS, import_runs
        )
        res["import_ms_base"], _ = import_ms(sys.executable, IMPORT_BASE, import_runs)
        python = sdk_python() if args.backend == "sqlite" and not args.no_sdk else None
        if python:
            for label, sync in (("normal", "NORMAL"), ("default", "default")):
                log(f"ruvon-sdk 0.1.5 (synchronous={sync}): {n} sequential, then 50 concurrent")
                res[f"sdk_seq_{label}"] = run_runner(
                    python, "_sdk_runner.py", next(db), n=n, synchronous=sync, count_commits=50
                )
                res[f"sdk_c50_{label}"] = run_runner(
                    python, "_sdk_runner.py", next(db), n=n, concurrency=50, synchronous=sync
                )
            log(f"ruvon-sdk: RSS after {rss_n} workflows")
            res["sdk_rss"] = run_runner(
                python, "_sdk_runner.py", next(db), n=rss_n, concurrency=50, rss_only=True
            )
            res["import_ms_sdk"], _ = import_ms(
                python, "import ruvon.engine, ruvon.implementations.persistence.sqlite", import_runs
            )
    return res


def ratios(r: dict) -> list[tuple[str, str, str, bool | None]]:
    """(what, measured, target, met?) rows."""
    rows = []
    steps_seq = r["edge_seq"]["wf_per_s"] * 3
    steps_c50 = r["edge_c50"]["wf_per_s"] * 3
    raw = r["raw_sqlite_commits_per_s"]
    if "sdk_seq_normal" in r:
        seq = r["edge_seq"]["wf_per_s"] / r["sdk_seq_normal"]["wf_per_s"]
        c50 = r["edge_c50"]["wf_per_s"] / r["sdk_c50_normal"]["wf_per_s"]
        rows += [
            ("ours / ruvon-sdk, sequential (both NORMAL)", f"{seq:.1f}x", ">= 10x", seq >= 10),
            ("ours / ruvon-sdk, 50 concurrent (both NORMAL)", f"{c50:.1f}x", ">= 5x", c50 >= 5),
            (
                "ours / ruvon-sdk at its default, sequential",
                f"{r['edge_seq']['wf_per_s'] / r['sdk_seq_default']['wf_per_s']:.1f}x",
                "-",
                None,
            ),
        ]
    rows += [
        (
            "steps/s sequential / raw sqlite3 commits/s",
            f"{steps_seq / raw:.0%}",
            ">= 25%",
            steps_seq / raw >= 0.25,
        ),
        (
            "steps/s 50 concurrent / raw sqlite3 commits/s",
            f"{steps_c50 / raw:.0%}",
            ">= 25%",
            steps_c50 / raw >= 0.25,
        ),
    ]
    imp = r["import_ms_edge"] / r["import_ms_base"]
    rows.append(
        ("import ruvon_edge / pydantic+aiosqlite+yaml", f"{imp:.2f}x", "<= 1.15x", imp <= 1.15)
    )
    rows.append(
        (
            "heavy libraries loaded by that import",
            ", ".join(r["import_loaded_edge"]) or "none",
            "none",
            not r["import_loaded_edge"],
        )
    )
    rss = r["edge_rss"].get("rss_mb")
    rows.append(
        (
            f"RSS after {r['edge_rss']['workflows']:,} workflows",
            f"{rss} MB",
            "<= 36 MB",
            rss is not None and rss <= 36,
        )
    )
    return rows


def markdown(r: dict) -> str:
    """The README table: one row per engine and mode, then the ratios against the targets."""

    def line(cells) -> str:
        return "| " + " | ".join(str(c) for c in cells) + " |"

    out = [
        f"Workload: 3-step workflow, n={r['n']}, backend={r['backend']}, Python {r['python']} ({r['machine']}).",
        "",
    ]
    out += [
        line(["engine", "mode", "workflows/s", "step p50 ms", "step p99 ms", "commits/wf"]),
        line(["---"] * 6),
    ]
    runs = [("ruvon-edge", "edge_seq", "sequential"), ("ruvon-edge", "edge_c50", "50 concurrent")]
    for label in ("normal", "default"):
        runs += [
            ("ruvon-sdk 0.1.5", f"sdk_seq_{label}", "sequential"),
            ("ruvon-sdk 0.1.5", f"sdk_c50_{label}", "50 concurrent"),
        ]
    for name, key, mode in runs:
        if key in r:
            m = r[key]
            commits = m.get("commits_per_wf", m.get("traced_commits_per_wf", "-"))
            sync = m.get("sqlite_synchronous", "NORMAL")
            out.append(
                line(
                    [
                        name,
                        f"{mode}, synchronous={sync}",
                        f"{m['wf_per_s']:,.0f}",
                        m["step_p50_ms"],
                        m["step_p99_ms"],
                        commits,
                    ]
                )
            )
    sdk_rss = f", ruvon-sdk {r['sdk_rss']['rss_mb']} MB" if "sdk_rss" in r else ""
    out += [
        "",
        f"- RSS after {r['edge_rss']['workflows']:,} workflows (fresh process, 50 at a time): ruvon-edge {r['edge_rss']['rss_mb']} MB{sdk_rss}.",
        f"- Raw sqlite3 single-row commits/s (WAL, synchronous=NORMAL): {r['raw_sqlite_commits_per_s']:,.0f}.",
        f"- Import (median of fresh interpreters): ruvon_edge {r['import_ms_edge']} ms, pydantic+aiosqlite+yaml {r['import_ms_base']} ms"
        + (f", ruvon-sdk {r['import_ms_sdk']} ms." if "import_ms_sdk" in r else "."),
        "",
        line(["ratio", "measured", "target", "met"]),
        line(["---"] * 4),
    ]
    for what, measured, target, met in ratios(r):
        out.append(
            line([what, measured, target, "-" if met is None else ("yes" if met else "**no**")])
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=2000, help="workflows per throughput run (default 2000)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small runs (n=300, RSS after 1,000) for a smoke test"
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres", "redis"), default="sqlite")
    parser.add_argument("--no-sdk", action="store_true", help="skip the ruvon-sdk comparison")
    parser.add_argument(
        "--json", action="store_true", help="print the raw figures as one JSON document"
    )
    args = parser.parse_args(argv)
    if args.backend != "sqlite":
        module = f"ruvon_edge.implementations.persistence.{args.backend}"
        try:
            __import__(module)
        except ImportError as exc:
            print(f"bench: backend {args.backend} unavailable ({exc}); skipped", file=sys.stderr)
            return 0
    try:
        result = measure(args)
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    if args.json:
        result["ratios"] = [
            dict(zip(("what", "measured", "target", "met"), row, strict=True))
            for row in ratios(result)
        ]
        print(json.dumps(result, indent=2))
    else:
        print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

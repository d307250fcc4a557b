"""ASYNC tasks/s through PostgresExecutor and CeleryExecutor with 1 and 4 worker processes, in one run.

Usage::

    python bench/task_queue.py [--n 1000] [--quick] [--json] [--only postgres|celery] [--timeout 600]

Each run: an engine on a fresh SQLite file (the same for both executors, so
only the queue differs), ``--workers`` real worker subprocesses started the
way the executor tests start them (one task at a time each: the PostgreSQL
worker with ``--concurrency 1``, Celery with ``--pool=solo``), warmed up
until every worker has run a task; then ``--n`` workflows whose one ASYNC
step returns ``{"ok": True}`` are created, and the clock runs from the first
dispatch (``engine.run``, 50 at a time) until every one of them is
COMPLETED in the engine's store: dispatch, queue, worker, result back to the
engine, merge and commit. ms/task is seconds / tasks (wall time, not latency).

Services: PostgreSQL at ``$RUVON_TEST_POSTGRES_DSN`` (a unique schema per run,
dropped afterwards); RabbitMQ at ``$RUVON_TEST_AMQP_URL`` with a Redis result
backend at ``$RUVON_TEST_REDIS_URL`` (a unique queue per run, deleted
afterwards, with any result keys left behind). Executors use their default
poll intervals. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

HERE = os.path.dirname(os.path.abspath(__file__))
POSTGRES_DSN = os.environ.get(
    "RUVON_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
AMQP_URL = os.environ.get("RUVON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("RUVON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "amqp": 5672, "redis": 6379}
PG_WORKER = "ruvon_edge.implementations.execution.postgres_executor"
CELERY_APP = "ruvon_edge.implementations.execution.celery:worker_app"
APP = "ruvon_queue_bench_app"  # written to the run's temp dir; workers import it from there
APP_SOURCE = '''"""Task functions of bench/task_queue.py."""
import os
import time


def trivial(state, context):
    return {"ok": True}


def warm(state, context):
    time.sleep(0.2)  # long enough that idle workers take the other warm-up tasks
    return {"pid": os.getpid()}
'''
FLOWS = [
    f"workflow_type: QueueBench\nsteps:\n  - name: Work\n    type: ASYNC\n    function: {APP}.trivial\n",
    f"workflow_type: QueueWarm\nsteps:\n  - name: Warm\n    type: ASYNC\n    function: {APP}.warm\n",
]
BATCH = 50
UNFINISHED = ("ACTIVE", "PENDING_ASYNC")


class BenchError(Exception):
    """A run could not be measured; the message is one line naming what and where."""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def unreachable(name: str, url: str) -> str | None:
    """One line saying why ``url``'s server refuses connections, or None when it accepts them."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or DEFAULT_PORTS.get(parsed.scheme, 0)
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return f"{name} is not reachable at {host}:{port} ({exc})"


# -- worker subprocesses ---------------------------------------------------------------------


class Workers:
    """Worker subprocesses logging to files in the run's temp dir; stopped with SIGTERM."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        out = self.work / f"worker-{len(self.procs)}.log"
        with out.open("w") as sink:
            proc = subprocess.Popen(argv, cwd=self.work, env=env, stdout=sink,
                                    stderr=subprocess.STDOUT, text=True)  # fmt: skip
        self.procs.append((proc, out))

    def check(self) -> None:
        """Raise if a worker exited: a benchmark with fewer workers than it says is no benchmark."""
        for proc, out in self.procs:
            if proc.poll() is not None:
                tail = out.read_text().strip().splitlines()[-1:] or ["no output"]
                raise BenchError(f"worker pid {proc.pid} exited with {proc.returncode}: {tail[0]}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM all (running tasks finish), then wait; kill -9 whatever outlives ``timeout``."""
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log(f"worker pid {proc.pid} ignored SIGTERM for {timeout:.0f} s: killed")
                proc.kill()
                proc.wait(timeout=10)


# -- the two executors -----------------------------------------------------------------------


class PostgresBackend:
    """PostgresExecutor on a queue schema of this run only."""

    label = "PostgresExecutor"
    services = (("PostgreSQL", POSTGRES_DSN),)

    def __init__(self, work: Path) -> None:
        self.work = work
        self.schema = f"ruvon_bench_{os.getpid()}_{secrets.token_hex(4)}"

    def executor(self) -> Any:
        from ruvon_edge.implementations.execution.postgres_executor import PostgresExecutor

        return PostgresExecutor(POSTGRES_DSN, schema=self.schema)

    def worker(self, index: int) -> tuple[list[str], dict[str, str] | None]:
        return [sys.executable, "-m", PG_WORKER, "worker", "--dsn", POSTGRES_DSN, "--schema", self.schema,
                "--allow-module", APP, "--module-path", str(self.work), "--concurrency", "1",
                "--worker-id", f"bench-{index}-{os.getpid()}"], None  # fmt: skip

    async def cleanup(self, task_ids: list[str]) -> None:
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_DSN, timeout=10)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await conn.close()


class CeleryBackend:
    """CeleryExecutor on a queue of this run only; RabbitMQ broker, Redis result backend."""

    label = "CeleryExecutor"
    services = (("RabbitMQ", AMQP_URL), ("Redis", REDIS_URL))

    def __init__(self, work: Path) -> None:
        self.work = work
        self.queue = f"ruvon-bench-{os.getpid()}-{secrets.token_hex(4)}"

    def executor(self) -> Any:
        from ruvon_edge.implementations.execution.celery import CeleryExecutor

        return CeleryExecutor(AMQP_URL, backend_url=REDIS_URL, queue=self.queue)

    def worker(self, index: int) -> tuple[list[str], dict[str, str] | None]:
        env = {**os.environ, "RUVON_CELERY_BROKER": AMQP_URL, "RUVON_CELERY_BACKEND": REDIS_URL,
               "RUVON_ALLOW_MODULES": APP, "RUVON_MODULE_PATH": str(self.work),
               "RUVON_CELERY_QUEUE": self.queue}  # fmt: skip
        return [sys.executable, "-m", "celery", "-A", CELERY_APP, "worker", "--pool=solo",
                "-Q", self.queue, "-n", f"w{index}@{self.queue}", "--without-gossip",
                "--without-mingle", "--loglevel=WARNING"], env  # fmt: skip

    async def cleanup(self, task_ids: list[str]) -> None:
        await asyncio.to_thread(self._cleanup, task_ids)

    def _cleanup(self, task_ids: list[str]) -> None:
        import redis
        from kombu import pools

        from ruvon_edge.implementations.execution.celery import make_app

        app = make_app(AMQP_URL, REDIS_URL, queue=self.queue)
        try:
            with app.connection_for_write() as conn:
                conn.default_channel.queue_delete(self.queue)
        finally:
            app.close()
            pools.reset()
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
        try:  # reported results are forgotten already; this sweeps any the run left behind
            for start in range(0, len(task_ids), 500):
                client.delete(*(f"celery-task-meta-{t}" for t in task_ids[start : start + 500]))
        finally:
            client.close()


BACKENDS = {"postgres": PostgresBackend, "celery": CeleryBackend}


# -- one measured run ------------------------------------------------------------------------


def registry() -> Any:
    from ruvon_edge import WorkflowRegistry

    reg = WorkflowRegistry(allowed_modules=[APP])
    for flow in FLOWS:
        reg.register_yaml(flow)
    return reg


async def run_all(engine: Any, workflow_type: str, count: int) -> list[str]:
    """Create ``count`` workflows (untimed), return their ids."""
    return [str((await engine.start_workflow(workflow_type, {})).id) for _ in range(count)]


async def dispatch(engine: Any, ids: list[str]) -> None:
    for start in range(0, len(ids), BATCH):
        await asyncio.gather(*(engine.run(i) for i in ids[start : start + BATCH]))


async def settle(
    engine: Any, workflow_type: str, count: int, workers: Workers, timeout: float
) -> None:
    """Wait until no ``workflow_type`` workflow is unfinished; raise unless all ``count`` COMPLETED."""
    store, deadline = engine.persistence, time.monotonic() + timeout
    while True:
        pending = [
            row
            for status in UNFINISHED
            for row in await store.list_workflows(
                status=status, workflow_type=workflow_type, limit=1
            )
        ]
        if not pending:
            break
        workers.check()
        if time.monotonic() > deadline:
            raise BenchError(f"{workflow_type} workflows still unfinished after {timeout:.0f} s")
        await asyncio.sleep(0.02)
    done = await store.list_workflows(
        status="COMPLETED", workflow_type=workflow_type, limit=count + 1
    )
    if len(done) != count:
        raise BenchError(f"only {len(done)} of {count} {workflow_type} workflows COMPLETED")


async def warm_up(engine: Any, workers: Workers, count: int, timeout: float) -> list[str]:
    """Run warm-up tasks until each of ``count`` workers has run one; return their workflow ids."""
    seen: set[int] = set()
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        if time.monotonic() > deadline:
            raise BenchError(
                f"only {len(seen)} of {count} workers ran a task within {timeout:.0f} s"
            )
        batch = await run_all(engine, "QueueWarm", 2 * count)
        ids += batch
        await dispatch(engine, batch)
        await settle(engine, "QueueWarm", len(ids), workers, max(deadline - time.monotonic(), 1))
        for wf_id in batch:
            seen.add((await engine.get_workflow(wf_id)).to_dict()["state"]["pid"])
    return ids


async def measure(kind: str, n_workers: int, n: int, work: Path, timeout: float) -> dict[str, Any]:
    from ruvon_edge import WorkflowEngine
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    backend = BACKENDS[kind](work)
    store = SQLitePersistenceProvider(str(work / f"{kind}-{n_workers}.db"))
    engine = WorkflowEngine(persistence=store, registry=registry(), execution=backend.executor())
    workers = Workers(work)
    ids: list[str] = []
    warm: list[str] = []
    try:
        async with engine:
            for index in range(n_workers):
                workers.start(*backend.worker(index))
            warm = await warm_up(engine, workers, n_workers, min(timeout, 120))
            ids = await run_all(engine, "QueueBench", n)
            t0 = time.perf_counter()
            await dispatch(engine, ids)
            dispatched = time.perf_counter() - t0
            await settle(engine, "QueueBench", n, workers, timeout)
            seconds = time.perf_counter() - t0
    finally:
        workers.stop()
        task_ids = [f"{i}:Work:1" for i in ids] + [f"{i}:Warm:1" for i in warm]
        await backend.cleanup(task_ids)
    return {"executor": backend.label, "workers": n_workers, "tasks": n, "seconds": seconds,
            "tasks_per_s": n / seconds, "ms_per_task": 1000 * seconds / n,
            "dispatch_seconds": dispatched}  # fmt: skip


# -- output ----------------------------------------------------------------------------------


def table(runs: list[dict[str, Any]]) -> str:
    lines = ["| executor | workers | tasks | seconds | tasks/s | ms/task |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in runs:
        lines.append(f"| {r['executor']} | {r['workers']} | {r['tasks']} | {r['seconds']:.2f} |"
                     f" {r['tasks_per_s']:,.0f} | {r['ms_per_task']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="tasks per run (default 1000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: n=200")
    parser.add_argument(
        "--json", action="store_true", help="print the figures as one JSON document"
    )
    parser.add_argument("--only", choices=sorted(BACKENDS), help="one executor only")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds per run before giving up"
    )
    args = parser.parse_args(argv)
    n = 200 if args.quick else args.n
    kinds = [args.only] if args.only else ["postgres", "celery"]
    for kind in kinds:
        for name, url in BACKENDS[kind].services:
            if problem := unreachable(name, url):
                print(f"queue bench: {problem}", file=sys.stderr)
                return 1
    runs = []
    with tempfile.TemporaryDirectory(prefix="ruvon-queue-bench-") as tmp:
        work = Path(tmp)
        (work / f"{APP}.py").write_text(APP_SOURCE)
        sys.path.insert(0, tmp)  # the engine's registry resolves the task functions too
        for kind in kinds:
            for n_workers in (1, 4):
                log(f"{kind}: {n} tasks, {n_workers} worker(s) ...")
                try:
                    runs.append(asyncio.run(measure(kind, n_workers, n, work, args.timeout)))
                except Exception as exc:  # one line naming the run, not a traceback
                    what = (
                        str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
                    )
                    print(
                        f"queue bench: {kind} with {n_workers} worker(s): {what}", file=sys.stderr
                    )
                    return 1
    if args.json:
        print(json.dumps({"n": n, "python": sys.version.split()[0], "runs": runs}, indent=2))
    else:
        print(
            f"\n{n} trivial ASYNC tasks per run; engine on SQLite; each worker runs one task at a time.\n"
        )
        print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

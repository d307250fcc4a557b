"""PostgresExecutor with real worker subprocesses on the local PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import asyncpg
import exec_app
import pytest
from providers.stores import drop_schema, unique_schema

from ruvon_edge import WorkflowEngine
from ruvon_edge.implementations.execution import _pg_queue
from ruvon_edge.implementations.execution.postgres_executor import PostgresExecutor
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

pytestmark = pytest.mark.services
HERE = Path(__file__).parent
REPO = HERE.parent.parent


@pytest.fixture
async def queue_schema(postgres_dsn):
    """A queue schema of this test only."""
    schema = unique_schema()
    yield schema
    await drop_schema(postgres_dsn, schema)


@pytest.fixture
async def engine(postgres_dsn, queue_schema, tmp_path):
    """An engine on SQLite whose ASYNC/PARALLEL tasks go to the PostgreSQL queue."""
    executor = PostgresExecutor(
        postgres_dsn, schema=queue_schema, lease_seconds=1.0, poll_seconds=0.2
    )
    store = SQLitePersistenceProvider(str(tmp_path / "edge.db"))
    async with WorkflowEngine(
        persistence=store, registry=exec_app.registry(), execution=executor
    ) as eng:
        yield eng


class Workers:
    """Worker subprocesses; every one still alive is killed at teardown."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn, self.schema, self.procs = dsn, schema, []

    def start(self, concurrency: int = 2) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ruvon_edge.implementations.execution.postgres_executor", "worker",
             "--dsn", self.dsn, "--schema", self.schema, "--allow-module", "exec_app",
             "--module-path", str(HERE), "--concurrency", str(concurrency), "--lease-seconds", "1"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)


@pytest.fixture
def workers(postgres_dsn, queue_schema):
    w = Workers(postgres_dsn, queue_schema)
    yield w
    w.stop_all()


async def _settled(engine, wf_id, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        wf = await engine.get_workflow(wf_id)
        if wf.status not in ("ACTIVE", "PENDING_ASYNC"):
            return wf
        if time.monotonic() > deadline:
            raise AssertionError(f"workflow {wf_id} still {wf.status} after {timeout} s")
        await asyncio.sleep(0.1)


def _log_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


async def test_async_step_runs_on_a_worker_and_the_workflow_continues(engine, workers, tmp_path):
    """An ASYNC step waits PENDING_ASYNC, a worker process runs it, and its result moves the workflow on to completion."""
    log = tmp_path / "log"
    wf = await engine.run((await engine.start_workflow("Remote", {"log": str(log), "key": "a"})).id)
    assert wf.status == "PENDING_ASYNC"
    worker = workers.start()
    wf = await _settled(engine, wf.id)
    assert wf.status == "COMPLETED" and wf.state.after is True
    assert wf.state.worked_by == worker.pid != os.getpid()
    assert _log_lines(log) == [["a", str(worker.pid)]]


async def test_a_failing_task_fails_the_step_and_compensates(engine, workers, tmp_path):
    """A task whose function raises is reported back: the saga rolls back instead of hanging in PENDING_ASYNC."""
    workers.start()
    wf = await engine.run(
        (await engine.start_workflow("RemoteSaga", {"log": str(tmp_path / "log")})).id
    )
    wf = await _settled(engine, wf.id)
    assert wf.status == "FAILED_ROLLED_BACK" and wf.state.undone is True
    assert "printer on fire" in wf.error


async def test_two_workers_never_run_the_same_task(engine, workers, tmp_path):
    """Forty ASYNC tasks over two workers with four slots each: every task runs exactly once."""
    log = tmp_path / "log"
    starts = [engine.start_workflow("Remote", {"log": str(log), "key": f"k{n}"}) for n in range(40)]
    ids = [(await s).id for s in starts]
    first, second = workers.start(4), workers.start(4)
    await asyncio.gather(*(engine.run(i) for i in ids))
    done = [await _settled(engine, i) for i in ids]
    assert {w.status for w in done} == {"COMPLETED"}
    runs = Counter(key for key, _ in _log_lines(log))
    assert runs == Counter({f"k{n}": 1 for n in range(40)})
    assert {pid for _, pid in _log_lines(log)} <= {str(first.pid), str(second.pid)}


async def test_a_killed_workers_task_is_retried_by_another(
    engine, workers, tmp_path, postgres_dsn, queue_schema
):
    """kill -9 of the worker running a task: after its lease the task is claimed again and the workflow completes."""
    log = tmp_path / "log"
    wf = await engine.run(
        (await engine.start_workflow("Remote", {"log": str(log), "key": "slow", "sleep": 30})).id
    )
    victim = workers.start()
    marker = Path(str(log) + ".started")
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert time.monotonic() < deadline, "the first worker never started the task"
        await asyncio.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    rescuer = workers.start()
    wf = await _settled(engine, wf.id)
    assert wf.status == "COMPLETED" and wf.state.worked_by == rescuer.pid
    conn = await asyncpg.connect(postgres_dsn)
    try:
        attempts = await conn.fetchval(f'SELECT attempts FROM "{queue_schema}".queue_tasks')
    finally:
        await conn.close()
    assert attempts == 2


async def test_a_cancelled_task_does_not_run(engine, workers, tmp_path):
    """Cancelling a workflow whose task is still queued cancels the task: a worker started later never runs it."""
    log = tmp_path / "log"
    wf = await engine.run(
        (await engine.start_workflow("Remote", {"log": str(log), "key": "never"})).id
    )
    task_id = f"{wf.id}:Work:1"  # ASYNC task ids are deterministic: {workflow}:{step}:{n}
    assert await engine.execution.get_task_status(task_id) == "QUEUED"
    wf = await engine.cancel(wf.id)
    assert wf.status == "CANCELLED"
    assert await engine.execution.get_task_status(task_id) == "CANCELLED"
    workers.start()
    await asyncio.sleep(1.5)
    assert _log_lines(log) == []
    assert (await engine.get_workflow(wf.id)).status == "CANCELLED"


async def test_parallel_fan_out_runs_on_workers_in_item_order(engine, workers, tmp_path):
    """A PARALLEL fan-out is spread over worker slots, its results come back in item order, and a failed item fails the step."""
    workers.start(4)
    wf = await engine.start_workflow(
        "FanOut", {"log": str(tmp_path / "log"), "items": [3, 1, 4, 1, 5]}
    )
    wf = await engine.run(wf.id)
    assert wf.status == "COMPLETED", wf.error
    assert wf.state.squares == [9, 1, 16, 1, 25]
    bad = await engine.start_workflow("FanOut", {"log": str(tmp_path / "log"), "items": [2, -1]})
    bad = await engine.run(bad.id)
    assert bad.status == "FAILED" and "negative item -1" in bad.error


async def test_workers_refuse_code_outside_their_allowed_modules(
    engine, workers, postgres_dsn, queue_schema
):
    """A forged queue row naming os.system fails with the allow-list error and runs nothing."""
    conn = await asyncpg.connect(postgres_dsn, server_settings={"search_path": queue_schema})
    try:
        payload = {
            "function": "os.system",
            "state": {},
            "kwargs": {},
            "context": {"workflow_id": "x", "step_name": "s"},
        }
        await _pg_queue.enqueue(conn, queue_schema, [{"task_id": "forged", "kind": "parallel", "payload":
                                                      {**payload, "kwargs": {"command": "touch /tmp/pwned"}},
                                                      "max_attempts": 1}])  # fmt: skip
        workers.start()
        deadline = time.monotonic() + 20
        while (row := await conn.fetchrow("SELECT status, error FROM queue_tasks WHERE task_id = 'forged'"))["status"] in (
            "QUEUED", "RUNNING"
        ):  # fmt: skip
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    assert row["status"] == "FAILED" and "allowed_modules" in row["error"]


async def test_worker_stops_cleanly_on_sigterm(engine, workers, tmp_path):
    """SIGTERM lets the worker finish its running task and exit 0; the task's workflow completes."""
    log = tmp_path / "log"
    worker = workers.start()
    wf = await engine.run(
        (await engine.start_workflow("Remote", {"log": str(log), "key": "t", "sleep": 1})).id
    )
    deadline = time.monotonic() + 20
    while not Path(str(log) + ".started").exists():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 20) == 0
    assert (await _settled(engine, wf.id)).status == "COMPLETED"


def test_worker_without_allowed_modules_is_a_usage_error():
    """A worker started without --allow-module refuses to run (exit 2) instead of importing anything it is sent."""
    out = subprocess.run(
        [sys.executable, "-m", "ruvon_edge.implementations.execution.postgres_executor", "worker",
         "--dsn", "postgresql://127.0.0.1:1/x"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 2 and "--allow-module" in out.stderr

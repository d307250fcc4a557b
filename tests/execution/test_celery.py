"""CeleryExecutor with real Celery worker subprocesses (RabbitMQ broker, Redis result backend)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import exec_app
import pytest
from providers.stores import unique_prefix
from services import AMQP_URL, REDIS_URL, require

from ruvon_edge import WorkflowEngine
from ruvon_edge.implementations.execution.celery import CeleryExecutor, make_app
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

pytestmark = [
    pytest.mark.services,
    # Celery's Redis result backend still calls redis-py's deprecated setex (third-party, harmless)
    pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning"),
]
HERE = Path(__file__).parent
REPO = HERE.parent.parent


@pytest.fixture(scope="module", autouse=True)
def _close_broker_pools():
    """Close kombu's process-wide connection pools once this module is done (they outlive any one app)."""
    yield
    from kombu import pools

    pools.reset()


@pytest.fixture
def broker():
    """(broker URL, backend URL, a queue of this test only); the queue is deleted afterwards."""
    require("RabbitMQ", AMQP_URL.replace("amqp://", "http://"))
    require("Redis", REDIS_URL)
    queue = unique_prefix().replace(":", "-")
    yield AMQP_URL, REDIS_URL, queue
    app = make_app(AMQP_URL, REDIS_URL, queue=queue)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)
    app.close()


class Workers:
    """Celery worker subprocesses (solo pool: the task runs in the process we kill); killed at teardown."""

    def __init__(self, broker_url: str, backend_url: str, queue: str) -> None:
        self.env = {**os.environ, "RUVON_CELERY_BROKER": broker_url, "RUVON_CELERY_BACKEND": backend_url,
                    "RUVON_ALLOW_MODULES": "exec_app", "RUVON_MODULE_PATH": str(HERE), "RUVON_CELERY_QUEUE": queue}  # fmt: skip
        self.queue = queue
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "ruvon_edge.implementations.execution.celery:worker_app",
             "worker", "--pool=solo", "-Q", self.queue, "-n", f"{name}@{self.queue}", "--without-gossip",
             "--without-mingle", "--loglevel=WARNING"],
            cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)


@pytest.fixture
def workers(broker):
    w = Workers(*broker)
    yield w
    w.stop_all()


def _engine(broker, tmp_path) -> WorkflowEngine:
    broker_url, backend_url, queue = broker
    executor = CeleryExecutor(broker_url, backend_url=backend_url, queue=queue, poll_seconds=0.1)
    store = SQLitePersistenceProvider(str(tmp_path / "edge.db"))
    return WorkflowEngine(persistence=store, registry=exec_app.registry(), execution=executor)


@pytest.fixture
async def engine(broker, tmp_path):
    async with _engine(broker, tmp_path) as eng:
        yield eng


async def _settled(engine, wf_id, timeout: float = 40.0):
    deadline = time.monotonic() + timeout
    while (wf := await engine.get_workflow(wf_id)).status in ("ACTIVE", "PENDING_ASYNC"):
        assert time.monotonic() < deadline, f"workflow {wf_id} still {wf.status} after {timeout} s"
        await asyncio.sleep(0.1)
    return wf


def _log_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


async def test_async_step_runs_on_a_celery_worker(engine, workers, tmp_path):
    """An ASYNC step runs in a Celery worker process and its result moves the workflow on to completion."""
    worker = workers.start("w1")
    log = tmp_path / "log"
    wf = await engine.run((await engine.start_workflow("Remote", {"log": str(log), "key": "a"})).id)
    assert wf.status == "PENDING_ASYNC"
    wf = await _settled(engine, wf.id)
    assert wf.status == "COMPLETED" and wf.state.after and wf.state.worked_by == worker.pid
    assert _log_lines(log) == [["a", str(worker.pid)]]


async def test_a_failing_task_is_reported_and_compensated(engine, workers, tmp_path):
    """A task whose function raises reaches the engine as a failure: the saga rolls back, nothing hangs."""
    workers.start("w1")
    wf = await engine.run(
        (await engine.start_workflow("RemoteSaga", {"log": str(tmp_path / "log")})).id
    )
    wf = await _settled(engine, wf.id)
    assert wf.status == "FAILED_ROLLED_BACK" and wf.state.undone and "printer on fire" in wf.error


async def test_two_workers_never_run_the_same_task(engine, workers, tmp_path):
    """Twenty ASYNC tasks over two workers: every task runs exactly once."""
    log = tmp_path / "log"
    ids = [
        (await engine.start_workflow("Remote", {"log": str(log), "key": f"k{n}"})).id
        for n in range(20)
    ]
    first, second = workers.start("w1"), workers.start("w2")
    await asyncio.gather(*(engine.run(i) for i in ids))
    assert {(await _settled(engine, i)).status for i in ids} == {"COMPLETED"}
    assert Counter(key for key, _ in _log_lines(log)) == Counter({f"k{n}": 1 for n in range(20)})
    assert {pid for _, pid in _log_lines(log)} <= {str(first.pid), str(second.pid)}


async def test_a_killed_workers_task_is_delivered_again(engine, workers, tmp_path):
    """kill -9 of the worker running a task (acks_late): the broker redelivers it and another worker completes it."""
    log = tmp_path / "log"
    victim = workers.start("victim")
    wf = await engine.run(
        (await engine.start_workflow("Remote", {"log": str(log), "key": "slow", "sleep": 60})).id
    )
    marker = Path(str(log) + ".started")
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "the first worker never started the task"
        await asyncio.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    rescuer = workers.start("rescuer")
    wf = await _settled(engine, wf.id)
    assert wf.status == "COMPLETED" and wf.state.worked_by == rescuer.pid


async def test_a_cancelled_task_does_not_run(engine, workers, tmp_path):
    """Cancelling a workflow revokes its queued task: a worker started afterwards never runs it."""
    log = tmp_path / "log"
    wf = await engine.run(
        (await engine.start_workflow("Remote", {"log": str(log), "key": "never"})).id
    )
    task_id = f"{wf.id}:Work:1"
    assert await engine.execution.get_task_status(task_id) == "QUEUED"
    assert (await engine.cancel(wf.id)).status == "CANCELLED"
    assert await engine.execution.get_task_status(task_id) == "CANCELLED"
    # a probe task behind the cancelled one shows when the worker has drained the queue
    probe = await engine.run(
        (await engine.start_workflow("Remote", {"log": str(log), "key": "probe"})).id
    )
    workers.start("late")
    assert (await _settled(engine, probe.id)).status == "COMPLETED"
    assert [key for key, _ in _log_lines(log)] == ["probe"]
    await asyncio.to_thread(engine.execution.app.AsyncResult(task_id).forget)
    assert not await asyncio.to_thread(
        engine.execution.app.backend.get, f"ruvon-cancelled-{task_id}"
    )


async def test_an_engine_restart_still_receives_the_outcome(broker, workers, tmp_path):
    """A task that finishes while no engine runs is picked up by the next engine from its waiting workflows."""
    log = tmp_path / "log"
    async with _engine(broker, tmp_path) as first:
        wf = await first.run(
            (await first.start_workflow("Remote", {"log": str(log), "key": "r"})).id
        )
        assert wf.status == "PENDING_ASYNC"
    workers.start("w1")
    deadline = time.monotonic() + 30
    while not _log_lines(log):
        assert time.monotonic() < deadline, "the worker never ran the task"
        await asyncio.sleep(0.1)
    async with _engine(broker, tmp_path) as second:
        assert (await _settled(second, wf.id)).status == "COMPLETED"


async def test_parallel_fan_out_runs_on_celery_workers(engine, workers, tmp_path):
    """A PARALLEL fan-out runs as Celery tasks and its results come back in item order."""
    workers.start("w1")
    workers.start("w2")
    wf = await engine.run(
        (
            await engine.start_workflow(
                "FanOut", {"log": str(tmp_path / "log"), "items": [2, 3, 4]}
            )
        ).id
    )
    assert wf.status == "COMPLETED"
    assert wf.state.squares == [4, 9, 16]

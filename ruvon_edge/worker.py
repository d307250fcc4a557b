"""``ruvon-edge serve``: the long-running device worker (systemd ``Type=notify``).

On start it recovers: first, at once, what its own worker id still holds
(the default id is stable per host and database, so that is its killed
predecessor's work), then zombies and dead workers' tasks; then it
resumes ACTIVE workflows that no worker was heartbeating (they stopped
between steps) and applies finished tasks of PENDING_ASYNC workflows whose
completion was cut off. Then, until SIGTERM/SIGINT, its main loop claims and
runs ASYNC tasks (at most ``concurrency`` at once), starts scheduled runs,
requeues tasks of dead workers and recovers zombies, and pings the systemd
watchdog: the ping comes from this loop, so a wedged loop stops pinging.
Every run here heartbeats its workflow. On stop it takes no new work and
gives running steps ``grace_seconds`` to finish; what is still running then
is abandoned to the store (the next ``serve`` takes it back at start).

It logs (JSON lines on stdout) one event per ASYNC task it ran
(``task_finished``: outcome, duration), per workflow ending FAILED*
(``workflow_failed``, from the engine), per schedule slot started
(``schedule_fired``), per zombie recovered and per task requeued, and a
warning (``no_definitions``) when it has nothing to run.

One ``serve`` per database: two would both resume the same ACTIVE workflows
at start (the row version makes one of them back off, but work is doubled),
so ``main`` holds an exclusive lock; that is also what lets a new ``serve``
take back at once whatever its stable worker id still holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ruvon_edge import _sd_notify
from ruvon_edge._logs import configure_json_logs
from ruvon_edge.engine import tasks, zombies
from ruvon_edge.engine.core import Engine
from ruvon_edge.errors import RuvonError
from ruvon_edge.process_lock import LockBusy, ProcessLock
from ruvon_edge.providers.persistence import ConcurrentUpdateError, PersistenceError
from ruvon_edge.schedule import Scheduler
from ruvon_edge.status import WorkflowStatus

S = WorkflowStatus
logger = logging.getLogger(__name__)
Clock = Callable[[], datetime]


class Worker:
    """The state of one ``serve`` run: its jobs in flight and when maintenance is next due."""

    def __init__(
        self, engine: Engine, *, worker_id: str, poll_interval: float, zombie_threshold: float, concurrency: int,
        grace_seconds: float, heartbeat_interval: float | None, clock: Clock | None, stop_event: asyncio.Event,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.worker_id = worker_id
        self.poll_interval = poll_interval
        self.zombie_threshold = zombie_threshold
        self.concurrency = max(1, concurrency)
        self.grace_seconds = grace_seconds
        self.heartbeat_interval = heartbeat_interval or max(0.5, zombie_threshold / 3)
        self.stop = stop_event
        self.scheduler = Scheduler(engine, clock)
        self.jobs: dict[asyncio.Task, str] = {}
        self.slots = asyncio.Semaphore(self.concurrency)
        self.wake = asyncio.Event()

    def log(self, level: int, event: str, **fields: Any) -> None:
        """Log ``event`` with ``fields`` and this worker's id (stdlib logging; JSON under ``serve``)."""
        logger.log(level, event, extra={"worker_id": self.worker_id, **fields})

    # -- main loop -----------------------------------------------------------------------
    async def serve(self) -> int:
        """Recover, signal READY, loop until stopped, drain, signal STOPPING; return the exit code."""
        loop = asyncio.get_running_loop()
        await self.reclaim()
        await self.maintain()
        await self.resume_unfinished()
        _sd_notify.notify("READY=1", f"STATUS=serving as {self.worker_id}")
        types = self.engine.registry.types()
        self.log(logging.INFO, "serve_ready", concurrency=self.concurrency, definitions=len(types),
                 schedules=self.scheduler.types)  # fmt: skip
        if not types:
            self.log(logging.WARNING, "no_definitions",
                     hint="no workflow definitions loaded: give --definitions (or $RUVON_DEFINITIONS)")  # fmt: skip
        watchdog = _sd_notify.watchdog_interval()
        next_ping = next_maintenance = next_schedule = loop.time()
        maintenance_every = max(0.5, min(self.zombie_threshold / 3, 10.0))
        while not self.stop.is_set():
            now = loop.time()
            if watchdog is not None and now >= next_ping:
                _sd_notify.notify("WATCHDOG=1")
                next_ping = now + watchdog
            if now >= next_maintenance:
                await self._guard("maintenance", self.maintain())
                next_maintenance = now + maintenance_every
            if now >= next_schedule:
                for wid in await self._guard("schedules", self.scheduler.tick()) or []:
                    self.spawn(wid, self.engine.run(wid))
                next_schedule = now + 1.0
            more = await self._guard("claim", self.claim()) or False
            timeout = self.poll_interval if not more else None
            if watchdog is not None:
                timeout = min(timeout or watchdog, max(0.0, next_ping - loop.time()))
            await self._sleep(timeout)
        _sd_notify.notify("STOPPING=1")
        await self.drain()
        self.log(logging.INFO, "serve_stopped")
        return 0

    async def _sleep(self, timeout: float | None) -> None:
        """Wait for a job to end (a slot is free), for stop, or for ``timeout``."""
        self.wake.clear()
        waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(self.stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _guard(self, what: str, work: Awaitable[Any]) -> Any:
        """Run one duty of the loop; a storage hiccup is logged and retried next round, never fatal."""
        try:
            return await work
        except (PersistenceError, OSError) as exc:
            self.log(
                logging.WARNING,
                "serve_duty_failed",
                duty=what,
                error=f"{type(exc).__name__}: {exc}",
            )
            return None

    async def drain(self) -> None:
        """Let running jobs finish within the grace period; abandon the rest (their tasks get requeued)."""
        if not self.jobs:
            return
        done, pending = await asyncio.wait(list(self.jobs), timeout=self.grace_seconds)
        for job in pending:
            job.cancel()
        if pending:
            self.log(
                logging.WARNING, "serve_grace_expired", abandoned=sorted(set(self.jobs.values()))
            )
            await asyncio.gather(*pending, return_exceptions=True)

    # -- duties --------------------------------------------------------------------------
    async def claim(self) -> bool:
        """Claim tasks into free slots; True when the queue may hold more (all slots filled)."""
        while len(self.jobs) < self.concurrency and not self.stop.is_set():
            task = await self.engine.persistence.claim_next_task(self.worker_id)
            if task is None:
                return False
            self.spawn(
                task["workflow_id"],
                self._run_task(task),
                step=task.get("step_name"),
                beat_now=False,
            )
        return True

    async def _run_task(self, task: dict[str, Any]) -> Any:
        started = asyncio.get_running_loop().time()
        try:
            ended: Any = await self.engine.run_async_task(task)
        except ConcurrentUpdateError:  # someone wrote the workflow meanwhile; the task row is final
            ended = await tasks.reconcile(self.engine, await self.engine._load(task["workflow_id"]))
        duration_ms = round((asyncio.get_running_loop().time() - started) * 1000, 3)
        await self._guard("task_log", self._task_ended(task, duration_ms))
        return ended

    async def _task_ended(self, task: dict[str, Any], duration_ms: float) -> None:
        """One line per ASYNC task a run here ended: its outcome as the task row records it."""
        final = await self.engine.persistence.get_task(task["task_id"])
        level = logging.INFO if final["status"] == "COMPLETED" else logging.WARNING
        self.log(level, "task_finished", task_id=task["task_id"], workflow_id=task["workflow_id"],
                 step=task.get("step_name"), outcome=final["status"], error=final.get("error"),
                 attempt=final.get("attempts"), duration_ms=duration_ms)  # fmt: skip

    async def maintain(self) -> None:
        """Requeue dead workers' tasks (fail those out of attempts) and recover zombie workflows."""
        persistence = self.engine.persistence
        threshold = self.zombie_threshold
        lost = await persistence.requeue_stale_tasks(threshold)  # type: ignore[arg-type]
        await self._recover(lost, await persistence.scan_stale_heartbeats(threshold))  # type: ignore[arg-type]

    async def reclaim(self) -> None:
        """At start, take back at once what this worker id still holds: its predecessor is gone.

        The default worker id is stable per host and database, and one ``serve``
        runs per database, so a restart need not wait out the zombie threshold.
        """
        persistence = self.engine.persistence
        try:
            lost = await persistence.requeue_worker_tasks(self.worker_id)
        except NotImplementedError:  # this store only knows stale heartbeats
            lost = []
        beats = [
            b
            for b in await persistence.scan_stale_heartbeats(0)
            if b["worker_id"] == self.worker_id
        ]
        await self._recover(lost, beats, predecessor=True)

    async def _recover(
        self, lost: list[dict], beats: list[dict], predecessor: bool = False
    ) -> None:
        for task in lost:
            self.log(logging.WARNING, "task_requeued" if task["status"] == "QUEUED" else "task_abandoned",
                     task_id=task["task_id"], workflow_id=task["workflow_id"], attempts=task.get("attempts"),
                     predecessor=predecessor)  # fmt: skip
            if task["status"] != "QUEUED":
                self.spawn(task["workflow_id"], self.engine.complete_async_task(task["task_id"]))
        busy = set(self.jobs.values())
        stale = {b["workflow_id"]: b for b in beats if b["workflow_id"] not in busy}
        if stale:
            outcome = await zombies.recover(self.engine, list(stale.values()), resume=self._resume)
            for wid, what in outcome.items():
                if what != "task":
                    self.log(logging.WARNING, "zombie_recovered", workflow_id=wid, action=what,
                             last_heartbeat=stale[wid].get("last_heartbeat"),
                             previous_worker=stale[wid].get("worker_id"))  # fmt: skip

    async def _resume(self, wid: str) -> None:
        self.spawn(wid, self.engine.run(wid))

    async def resume_unfinished(self) -> None:
        """Resume ACTIVE workflows nobody heartbeats; apply finished tasks of PENDING_ASYNC ones."""
        beating = {b["workflow_id"] for b in await self.engine.persistence.scan_stale_heartbeats(0)}
        for status in (S.ACTIVE, S.PENDING_ASYNC):
            for row in await self._all(status):
                if row["id"] in beating:
                    continue  # a step was in flight: zombie recovery decides after the threshold
                if status == S.ACTIVE:
                    self.spawn(row["id"], self.engine.run(row["id"]))
                else:
                    self.spawn(row["id"], tasks.reconcile(self.engine, row), beat_now=False)
        self.log(logging.INFO, "serve_resumed", workflows=len(self.jobs))

    async def _all(self, status: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while batch := await self.engine.persistence.list_workflows(status, None, 500, len(rows)):
            rows.extend(batch)
            if len(batch) < 500:
                break
        return rows

    # -- jobs ----------------------------------------------------------------------------
    def spawn(
        self, wid: str, work: Awaitable[Any], step: str | None = None, beat_now: bool = True
    ) -> None:
        """Run ``work`` for workflow ``wid`` as a job that heartbeats the workflow while it runs."""
        job = asyncio.ensure_future(self._job(str(wid), work, step, beat_now))
        self.jobs[job] = str(wid)
        job.add_done_callback(self._job_done)

    def _job_done(self, job: asyncio.Task) -> None:
        self.jobs.pop(job, None)
        self.wake.set()

    async def _job(self, wid: str, work: Awaitable[Any], step: str | None, beat_now: bool) -> None:
        async with self.slots:
            beat = asyncio.ensure_future(self._beat(wid, step, beat_now))
            try:
                await self._work(wid, work)
            finally:
                beat.cancel()

    async def _work(self, wid: str, work: Awaitable[Any]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one workflow's trouble must not stop the worker
            self.log(
                logging.ERROR, "job_failed", workflow_id=wid, error=f"{type(exc).__name__}: {exc}"
            )

    async def _beat(self, wid: str, step: str | None, now: bool) -> None:
        if not now:
            await asyncio.sleep(self.heartbeat_interval)
        while True:
            try:
                await self.engine.persistence.heartbeat_update(wid, self.worker_id, step)
            except PersistenceError as exc:
                self.log(logging.WARNING, "heartbeat_failed", workflow_id=wid, error=str(exc))
            await asyncio.sleep(self.heartbeat_interval)


async def serve(
    engine: Engine,
    *,
    worker_id: str | None = None,
    poll_interval: float = 0.5,
    zombie_threshold: float = 30.0,
    stop_event: asyncio.Event | None = None,
    concurrency: int = 8,
    grace_seconds: float = 10.0,
    heartbeat_interval: float | None = None,
    clock: Clock | None = None,
) -> int:
    """Run the worker on an initialized engine until ``stop_event`` is set; return the exit code (0)."""
    worker = Worker(
        engine, worker_id=worker_id or default_worker_id(), poll_interval=poll_interval,
        zombie_threshold=zombie_threshold, concurrency=concurrency, grace_seconds=grace_seconds,
        heartbeat_interval=heartbeat_interval, clock=clock, stop_event=stop_event or asyncio.Event(),
    )  # fmt: skip
    return await worker.serve()


def default_worker_id(db: str | None = None) -> str:
    """``host:db-hash`` for a database file: the same after a restart, so the new ``serve`` takes
    back its predecessor's work at once; ``host:pid`` without one."""
    if db is None or db == ":memory:":
        return f"{socket.gethostname()}:{os.getpid()}"
    digest = hashlib.sha256(os.path.realpath(db).encode()).hexdigest()[:12]
    return f"{socket.gethostname()}:{digest}"


# -- command line ------------------------------------------------------------------------

ENV_OPTIONS = {
    "RUVON_WORKER_ID": ("worker_id", str),
    "RUVON_POLL_INTERVAL": ("poll_interval", float),
    "RUVON_ZOMBIE_THRESHOLD": ("zombie_threshold", float),
    "RUVON_CONCURRENCY": ("concurrency", int),
    "RUVON_GRACE_SECONDS": ("grace_seconds", float),
}


def options_from_env(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """``serve`` keyword options from ``RUVON_*`` variables; ValueError names a bad one."""
    environ = dict(os.environ if environ is None else environ)
    options: dict[str, Any] = {}
    for var, (name, kind) in ENV_OPTIONS.items():
        if environ.get(var):
            try:
                value = kind(environ[var])
            except ValueError:
                raise ValueError(
                    f"${var}={environ[var]!r} is not a valid {kind.__name__}"
                ) from None
            if kind is not str and value <= 0:
                raise ValueError(f"${var} must be positive, not {environ[var]!r}")
            options[name] = value
    return options


class AlreadyServing(RuvonError):
    """Another ``ruvon-edge serve`` holds this database's serve lock."""


def main(settings: Any, registry: Any) -> int:
    """Entry point of ``ruvon-edge serve``: ``settings.db`` and the registry the CLI built.

    One ``serve`` per database: two would resume the same workflows and run
    their current steps twice. An exclusive ``flock`` on ``<db>.serve.lock``
    (``ruvon_edge.process_lock``, as for the sync agent) refuses a second one; the kernel
    releases it when its holder dies, even by kill -9.
    """
    configure_json_logs()
    options = {"worker_id": default_worker_id(settings.db), **options_from_env()}
    if settings.db == ":memory:":
        return asyncio.run(_main(settings.db, registry, options))
    lock = Path(f"{settings.db}.serve.lock")
    try:
        with ProcessLock(lock, "ruvon-edge serve"):
            return asyncio.run(_main(settings.db, registry, options))
    except LockBusy:
        raise AlreadyServing(
            f"another ruvon-edge serve is running on {settings.db} (it holds {lock})"
        ) from None


async def _main(db: str, registry: Any, options: dict[str, Any]) -> int:
    from ruvon_edge.compose import WorkflowEngine
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with WorkflowEngine(SQLitePersistenceProvider(db), registry) as engine:
        return await serve(engine, stop_event=stop, **options)

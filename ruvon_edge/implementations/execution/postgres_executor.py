"""``PostgresExecutor``: ASYNC and PARALLEL tasks as rows of a durable PostgreSQL queue.

Why: workers on other machines run the step functions while the engine only
waits; a task survives any process dying. The queue itself (claiming with
``FOR UPDATE SKIP LOCKED``, heartbeats, leases, NOTIFY) is ``_pg_queue``.

Engine side: ``dispatch_async_task`` inserts the task (its deterministic id
makes a re-dispatch after a crash a no-op) and returns; a background loop
LISTENs for finished tasks (and polls, in case a notification was missed),
hands each outcome to ``engine.complete_async_task`` and marks it reported
-- a workflow never hangs in PENDING_ASYNC, even when its task failed, was
cancelled, or its worker died ``max_attempts`` times. The loop also requeues
the tasks of dead workers. ``dispatch_parallel_tasks`` queues one row per task
and waits for all of them.

Worker side::

    python -m ruvon_edge.implementations.execution.postgres_executor worker \\
        --dsn postgresql://... --allow-module app [--module-path DIR] [--concurrency 4]

Each worker runs ``--concurrency`` tasks at a time, wakes on NOTIFY, keeps
its tasks' heartbeats fresh, and exits cleanly on SIGTERM/SIGINT (running
tasks finish first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import sys
import uuid
from typing import Any

from ruvon_edge.implementations.execution import _pg_queue as queue
from ruvon_edge.implementations.execution._remote import (
    RemoteExecutionProvider,
    TaskRunner,
)
from ruvon_edge.providers.execution import ExecutionContext

logger = logging.getLogger(__name__)

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
WORKER_DIED = "worker died"


class _Queue:
    """A pool, the queue schema, and a LISTEN connection that sets events on notifications."""

    def __init__(self, dsn: str, schema: str, pool_size: int) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(
                f"queue schema name {schema!r} is not a plain identifier (at most 40 characters)"
            )
        self.dsn, self.schema, self.pool_size = dsn, schema, pool_size
        self.pool: Any = None
        self._listener: Any = None
        self._events: set[asyncio.Event] = set()

    async def open(self, channel: str) -> None:
        """Connect, create or migrate the queue schema, and LISTEN on ``channel``."""
        import asyncpg

        from ruvon_edge.implementations.persistence._pg_schema import migrate

        self._channel = channel
        try:
            self.pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                server_settings={"search_path": self.schema},
            )
            async with self.pool.acquire() as conn:
                await migrate(conn, self.schema, queue.MIGRATIONS, queue.VERSION_TABLE)
            await self._listen()
        except BaseException:
            await self.close()
            raise

    async def _listen(self) -> None:
        import asyncpg

        self._listener = await asyncpg.connect(self.dsn)
        await self._listener.add_listener(self._channel, lambda *_: self.wake())

    async def ensure_listening(self) -> None:
        """Reconnect the LISTEN connection if it dropped (polling covers the gap)."""
        if self._listener is None or self._listener.is_closed():
            with contextlib.suppress(OSError):
                await self._listen()

    def wake(self) -> None:
        for event in self._events:
            event.set()

    async def wait(self, timeout: float) -> None:
        """Sleep until a notification arrives or ``timeout`` passes."""
        event = asyncio.Event()
        self._events.add(event)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            self._events.discard(event)

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            await listener.close()
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.close()


class PostgresExecutor(RemoteExecutionProvider):
    """Runs ASYNC and PARALLEL tasks on workers that share a PostgreSQL queue."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "ruvon_queue",
        max_attempts: int = 3,
        lease_seconds: float = 30.0,
        poll_seconds: float = 2.0,
        pool_size: int = 5,
    ) -> None:
        self.dsn = dsn
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self._queue = _Queue(dsn, schema, pool_size)
        self._loop_task: asyncio.Task[None] | None = None
        self._applying: set[asyncio.Task[None]] = set()

    @property
    def schema(self) -> str:
        return self._queue.schema

    async def initialize(self, engine: Any) -> None:
        """Open the queue and start applying finished tasks to their workflows."""
        await super().initialize(engine)
        await self._queue.open(queue.channels(self.schema)[1])
        self._loop_task = asyncio.get_running_loop().create_task(self._report_loop())

    async def close(self) -> None:
        """Stop the report loop (in-flight applications finish first) and close the queue."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        await asyncio.gather(*self._applying, return_exceptions=True)
        await self._queue.close()

    # -- dispatch ----------------------------------------------------------------------------
    async def dispatch_async_task(
        self,
        workflow_id,
        step_name,
        function_path,
        state,
        context,
        execution_context: ExecutionContext | None = None,
    ) -> str:
        task_id = str((context or {}).get("task_id") or uuid.uuid4())
        payload = await self.payload_for(workflow_id, step_name, function_path, state, context)
        await self._enqueue([self._task(task_id, "async", workflow_id, step_name, payload)])
        return task_id

    def _task(
        self, task_id: str, kind: str, workflow_id: Any, step_name: str, payload: dict
    ) -> dict[str, Any]:
        return {"task_id": task_id, "kind": kind, "workflow_id": str(workflow_id), "step_name": step_name,
                "payload": payload, "max_attempts": self.max_attempts}  # fmt: skip

    async def submit_parallel(
        self, workflow_id: Any, jobs: list[tuple[str, str, dict[str, Any]]]
    ) -> None:
        await self._enqueue(
            [self._task(i, "parallel", workflow_id, name, p) for i, name, p in jobs]
        )

    async def _enqueue(self, rows: list[dict[str, Any]]) -> None:
        async with self._queue.pool.acquire() as conn:
            await queue.enqueue(conn, self.schema, rows)

    async def wait_all(self, task_ids: list[str]) -> dict[str, tuple[str, Any, str | None]]:
        done: dict[str, dict[str, Any]] = {}
        while True:
            async with self._queue.pool.acquire() as conn:
                done.update(await queue.outcomes(conn, [i for i in task_ids if i not in done]))
            if len(done) == len(task_ids):
                return {i: (r["status"], r["result"], r["error"]) for i, r in done.items()}
            await self._queue.wait(self.poll_seconds)

    async def cancel_all(self, task_ids: list[str]) -> None:
        async with self._queue.pool.acquire() as conn:
            for task_id in task_ids:
                await queue.cancel(conn, self.schema, task_id)

    # -- status, cancellation -------------------------------------------------------------------
    async def get_task_status(self, task_id: str) -> str:
        async with self._queue.pool.acquire() as conn:
            return await queue.status(conn, str(task_id))

    async def cancel_task(self, task_id: str) -> bool:
        async with self._queue.pool.acquire() as conn:
            return await queue.cancel(conn, self.schema, str(task_id))

    # -- reporting finished tasks back to the engine ----------------------------------------------
    async def _report_loop(self) -> None:
        while True:
            try:
                await self._queue.ensure_listening()
                async with self._queue.pool.acquire() as conn:
                    await queue.requeue_stale(conn, self.schema, self.lease_seconds, WORKER_DIED)
                    leased = await queue.take_reports(conn, self.lease_seconds, 100)
                for row in leased:
                    task = asyncio.get_running_loop().create_task(self._apply(row))
                    self._applying.add(task)
                    task.add_done_callback(self._applying.discard)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be briefly away: log, wait, try again
                _log("report_loop_failed", f"{type(exc).__name__}: {exc}")
            await self._queue.wait(self.poll_seconds)

    async def _apply(self, row: dict[str, Any]) -> None:
        error = row["error"]
        if row["status"] != "COMPLETED" and error is None:
            error = f"the task was {row['status'].lower()}"
        try:
            await self.engine.complete_async_task(
                row["task_id"], row["result"] if error is None else None, error
            )
            async with self._queue.pool.acquire() as conn:
                await queue.mark_reported(conn, row["task_id"])
        except Exception as exc:  # left unreported: the lease runs out and it is applied again
            _log("apply_failed", f"task {row['task_id']}: {type(exc).__name__}: {exc}")


def _log(event: str, detail: str) -> None:
    logger.warning(event, extra={"detail": detail})


# -- worker process --------------------------------------------------------------------------------
async def run_worker(
    dsn: str,
    allowed_modules: list[str],
    *,
    schema: str = "ruvon_queue",
    concurrency: int = 4,
    lease_seconds: float = 30.0,
    poll_seconds: float = 2.0,
    worker_id: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Claim and run tasks until ``stop`` is set; running tasks finish before returning."""
    runner = TaskRunner(allowed_modules)
    worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
    stop = stop or asyncio.Event()
    q = _Queue(dsn, schema, concurrency + 2)
    await q.open(queue.channels(schema)[0])
    running: set[str] = set()

    async def slot() -> None:
        while not stop.is_set():
            try:
                async with q.pool.acquire() as conn:
                    task = await queue.claim(conn, worker_id)
                if task is None:
                    await q.wait(poll_seconds)
                    continue
                running.add(task["task_id"])
                try:
                    result, error = await runner.run(task["payload"])
                    async with q.pool.acquire() as conn:
                        await queue.finish(conn, schema, task["task_id"], worker_id, result, error)
                finally:
                    running.discard(task["task_id"])
            except (
                Exception
            ) as exc:  # database away: an unfinished task is requeued after its lease
                _log("worker_slot_failed", f"{type(exc).__name__}: {exc}")
                await q.wait(poll_seconds)

    async def keep_alive() -> None:
        while True:
            await asyncio.sleep(lease_seconds / 3)
            with contextlib.suppress(
                Exception
            ):  # a missed beat is retried; the lease is three beats long
                await q.ensure_listening()
                async with q.pool.acquire() as conn:
                    await queue.heartbeat(conn, worker_id, list(running))
                    await queue.requeue_stale(conn, schema, lease_seconds, WORKER_DIED)

    beats = asyncio.get_running_loop().create_task(keep_alive())
    stopper = asyncio.get_running_loop().create_task(stop.wait())
    stopper.add_done_callback(lambda _: q.wake())
    try:
        await asyncio.gather(*(slot() for _ in range(concurrency)))
    finally:
        beats.cancel()
        stopper.cancel()
        await asyncio.gather(beats, stopper, return_exceptions=True)
        await q.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m ruvon_edge.implementations.execution.postgres_executor worker --dsn ... --allow-module ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m ruvon_edge.implementations.execution.postgres_executor"
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    worker = sub.add_parser("worker", help="claim and run tasks from the queue")
    worker.add_argument(
        "--dsn",
        default=os.environ.get("RUVON_QUEUE_DSN"),
        help="postgresql:// URL ($RUVON_QUEUE_DSN)",
    )
    worker.add_argument("--schema", default="ruvon_queue")
    worker.add_argument(
        "--allow-module", action="append", default=[], help="importable code (repeatable)"
    )
    worker.add_argument(
        "--module-path", action="append", default=[], help="prepended to sys.path (repeatable)"
    )
    worker.add_argument("--concurrency", type=int, default=4)
    worker.add_argument("--lease-seconds", type=float, default=30.0)
    worker.add_argument("--worker-id")
    args = parser.parse_args(argv)
    if not args.dsn or not args.allow_module:
        parser.error("worker needs --dsn (or $RUVON_QUEUE_DSN) and at least one --allow-module")
    sys.path[:0] = args.module_path

    async def serve() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await run_worker(args.dsn, args.allow_module, schema=args.schema, concurrency=args.concurrency,
                         lease_seconds=args.lease_seconds, worker_id=args.worker_id, stop=stop)  # fmt: skip

    try:
        asyncio.run(serve())
    except Exception as exc:  # e.g. the database refused us at start: one line, no traceback
        print(f"postgres worker: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``CeleryExecutor``: ASYNC and PARALLEL tasks on Celery workers (RabbitMQ or Redis broker).

Why: teams that already run Celery keep their broker, monitoring and worker
fleet. Tasks are sent with ``acks_late`` and ``reject_on_worker_lost``: a
worker killed mid-task leaves the message unacknowledged, so the broker
delivers it again to another worker. Only JSON travels (no pickle).

Engine side: ``dispatch_async_task`` sends the task (id: the engine's
deterministic task id) and a poll loop watches the result backend; each
outcome -- the function's result or its error, a revoked task, a task that
crashed the worker -- goes to ``engine.complete_async_task``, so a workflow
never hangs in PENDING_ASYNC. At start the loop picks up the tasks that
PENDING_ASYNC workflows are waiting for, so an engine restart loses none.
Dispatch is at-least-once (Celery cannot de-duplicate a re-send after a
crash); the engine ignores a second outcome.

Worker side (the app reads its settings from the environment)::

    RUVON_CELERY_BROKER=amqp://guest:guest@127.0.0.1:5672// \\
    RUVON_CELERY_BACKEND=redis://127.0.0.1:6379/0 RUVON_ALLOW_MODULES=app \\
    celery -A ruvon_edge.implementations.execution.celery:worker_app worker -Q ruvon

``RUVON_MODULE_PATH`` (``os.pathsep``-separated) is prepended to ``sys.path``.
The worker imports task code only from ``RUVON_ALLOW_MODULES``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from typing import Any

from ruvon_edge.implementations.execution._remote import (
    RemoteExecutionProvider,
    TaskRunner,
)

logger = logging.getLogger(__name__)

TASK_NAME = "ruvon_edge.run_task"
_STATES = {"PENDING": "QUEUED", "RECEIVED": "QUEUED", "RETRY": "QUEUED", "STARTED": "RUNNING",
           "SUCCESS": "COMPLETED", "FAILURE": "FAILED", "REVOKED": "CANCELLED"}  # fmt: skip


def make_app(
    broker_url: str, backend_url: str | None = None, *, queue: str = "ruvon", allowed_modules=()
) -> Any:
    """A Celery app configured for Ruvon tasks; ``allowed_modules`` matters only in workers."""
    from celery import Celery

    backend = backend_url or (
        broker_url if broker_url.startswith(("redis://", "rediss://")) else None
    )
    if backend is None:
        raise ValueError(
            "CeleryExecutor needs a result backend (backend_url) with a non-Redis broker"
        )
    app = Celery("ruvon", broker=broker_url, backend=backend)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=True,
        worker_prefetch_multiplier=1,
        task_default_queue=queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        ruvon_allowed_modules=list(allowed_modules),
    )
    runner: list[TaskRunner] = []

    @app.task(name=TASK_NAME, bind=True)
    def run_task(task: Any, payload: dict[str, Any]) -> dict[str, Any]:
        if _is_cancelled(app, task.request.id):  # revoked before any live worker could hear of it
            from celery.exceptions import Ignore

            app.backend.mark_as_revoked(task.request.id, "cancelled")
            # the message is acked now: the marker did its job
            app.backend.delete(_cancel_key(task.request.id))
            raise Ignore()
        if not runner:
            runner.append(TaskRunner(app.conf.ruvon_allowed_modules))
        result, error = asyncio.run(runner[0].run(payload))
        return {"result": result, "error": error}

    return app


def _cancel_key(task_id: str) -> str:
    return f"ruvon-cancelled-{task_id}"


def _is_cancelled(app: Any, task_id: str) -> bool:
    get = getattr(
        app.backend, "get", None
    )  # key-value backends (Redis); others rely on revoke alone
    return bool(get and get(_cancel_key(task_id)))


def _cancel(app: Any, task_ids: list[str]) -> None:
    """Revoke tasks: broadcast to live workers, and leave a marker later workers check (blocking)."""
    if not task_ids:
        return
    app.control.revoke(task_ids)
    for task_id in task_ids:
        if hasattr(app.backend, "set"):
            app.backend.set(_cancel_key(task_id), "1")
        app.backend.mark_as_revoked(task_id, "cancelled")


def __getattr__(name: str) -> Any:
    """``worker_app``: the app ``celery -A ...celery:worker_app worker`` runs, built from the environment."""
    if name != "worker_app":
        raise AttributeError(name)
    broker = os.environ.get("RUVON_CELERY_BROKER")
    allowed = [m for m in os.environ.get("RUVON_ALLOW_MODULES", "").split(",") if m.strip()]
    if not broker or not allowed:
        raise RuntimeError(
            "a Ruvon Celery worker needs RUVON_CELERY_BROKER and RUVON_ALLOW_MODULES"
        )
    sys.path[:0] = [p for p in os.environ.get("RUVON_MODULE_PATH", "").split(os.pathsep) if p]
    app = make_app(broker, os.environ.get("RUVON_CELERY_BACKEND"), allowed_modules=allowed,
                   queue=os.environ.get("RUVON_CELERY_QUEUE", "ruvon"))  # fmt: skip
    globals()["worker_app"] = app
    return app


class CeleryExecutor(RemoteExecutionProvider):
    """Sends ASYNC and PARALLEL tasks to Celery workers and reports their outcomes to the engine."""

    def __init__(self, app_or_broker_url: Any, *, backend_url: str | None = None, queue: str = "ruvon",
                 poll_seconds: float = 0.5) -> None:  # fmt: skip
        self._owns_app = isinstance(app_or_broker_url, str)
        if isinstance(app_or_broker_url, str):
            app_or_broker_url = make_app(app_or_broker_url, backend_url, queue=queue)
        self.app = app_or_broker_url
        self.queue = queue
        self.poll_seconds = poll_seconds
        self._watched: dict[str, None] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._applying: set[asyncio.Task[None]] = set()

    async def initialize(self, engine: Any) -> None:
        """Start watching results, beginning with the tasks waiting workflows are waiting for."""
        await super().initialize(engine)
        await self._watch_waiting_workflows()
        self._loop_task = asyncio.get_running_loop().create_task(self._poll_loop())

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        await asyncio.gather(*self._applying, return_exceptions=True)
        if self._owns_app:  # (broker connections stay in kombu's process-wide pools, by design)
            await asyncio.to_thread(self.app.close)

    async def _watch_waiting_workflows(self) -> None:
        from ruvon_edge.engine.tasks import awaited_task

        offset = 0
        while page := await self.engine.persistence.list_workflows(
            status="PENDING_ASYNC", limit=500, offset=offset
        ):
            for row in page:
                task_id = awaited_task({**row, "context": row.get("context") or {}})
                if task_id:
                    self._watched[task_id] = None
            offset += len(page)

    # -- dispatch ----------------------------------------------------------------------------
    def _send(self, task_id: str, payload: dict[str, Any]) -> None:
        self.app.send_task(TASK_NAME, args=[payload], task_id=task_id, queue=self.queue)

    async def dispatch_async_task(self, workflow_id, step_name, function_path, state, context,
                                  execution_context: Any = None) -> str:  # fmt: skip
        task_id = str((context or {}).get("task_id") or uuid.uuid4())
        payload = await self.payload_for(workflow_id, step_name, function_path, state, context)
        await asyncio.to_thread(self._send, task_id, payload)
        self._watched[task_id] = None
        return task_id

    async def submit_parallel(
        self, workflow_id: Any, jobs: list[tuple[str, str, dict[str, Any]]]
    ) -> None:
        for task_id, _, payload in jobs:
            await asyncio.to_thread(self._send, task_id, payload)

    async def wait_all(self, task_ids: list[str]) -> dict[str, tuple[str, Any, str | None]]:
        done: dict[str, tuple[str, Any, str | None]] = {}
        while len(done) < len(task_ids):
            done.update(
                await asyncio.to_thread(self._outcomes, [i for i in task_ids if i not in done])
            )
            if len(done) < len(task_ids):
                await asyncio.sleep(self.poll_seconds)
        await asyncio.to_thread(lambda: [self.app.AsyncResult(i).forget() for i in task_ids])
        return done

    async def cancel_all(self, task_ids: list[str]) -> None:
        finished = await asyncio.to_thread(self._outcomes, task_ids)
        await asyncio.to_thread(self._revoke, [i for i in task_ids if i not in finished])

    # -- results -----------------------------------------------------------------------------
    def _outcomes(self, task_ids: list[str]) -> dict[str, tuple[str, Any, str | None]]:
        """The finished ones among ``task_ids``: ``{id: (status, result, error)}`` (blocking: run in a thread)."""
        out = {}
        for task_id in task_ids:
            res = self.app.AsyncResult(task_id)
            state = res.state
            if state == "SUCCESS":
                value = res.result or {}
                error = value.get("error")
                out[task_id] = ("FAILED" if error else "COMPLETED", value.get("result"), error)
            elif state in ("FAILURE", "REVOKED"):
                out[task_id] = (_STATES[state], None, f"{type(res.result).__name__}: {res.result}"
                                if state == "FAILURE" else "the task was cancelled")  # fmt: skip
        return out

    def _revoke(self, task_ids: list[str]) -> None:
        _cancel(self.app, task_ids)

    async def _poll_loop(self) -> None:
        while True:
            try:
                finished = await asyncio.to_thread(self._outcomes, list(self._watched))
                for task_id, (_status, result, error) in finished.items():
                    self._watched.pop(task_id, None)
                    self._report(task_id, result, error)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or backend briefly away: try again next round
                logger.warning("poll_failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            await asyncio.sleep(self.poll_seconds)

    def _report(self, task_id: str, result: Any, error: str | None) -> None:
        async def apply() -> None:
            try:
                await self.engine.complete_async_task(task_id, None if error else result, error)
                await asyncio.to_thread(self.app.AsyncResult(task_id).forget)
            except Exception:  # watched again: the next round reports it once more
                self._watched[task_id] = None

        task = asyncio.get_running_loop().create_task(apply())
        self._applying.add(task)
        task.add_done_callback(self._applying.discard)

    # -- status, cancellation -------------------------------------------------------------------
    async def get_task_status(self, task_id: str) -> str:
        finished = await asyncio.to_thread(self._outcomes, [str(task_id)])
        if str(task_id) in finished:
            return finished[str(task_id)][0]
        state = await asyncio.to_thread(lambda: self.app.AsyncResult(str(task_id)).state)
        return _STATES.get(state, "QUEUED")

    async def cancel_task(self, task_id: str) -> bool:
        """Revoke a task that has not finished; its workflow (if still waiting) fails the step."""
        if await self.get_task_status(task_id) in ("COMPLETED", "FAILED", "CANCELLED"):
            return False
        await asyncio.to_thread(self._revoke, [str(task_id)])
        if self._watched.pop(str(task_id), "absent") is None:
            self._report(str(task_id), None, "the task was cancelled")
        return True

"""The engine façade: start, run, resume, cancel, retry and read workflows.

It sees only the provider interfaces; which implementations to use is decided
where the engine is built (``ruvon_edge.compose``). One asyncio lock per
workflow keeps two coroutines of this process from running the same instance;
across processes the row version (compare-and-set) makes a second writer fail
loudly instead of losing an update.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import logging
import weakref
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError

from ruvon_edge.definition.registry import WorkflowRegistry
from ruvon_edge.engine import audit, storable
from ruvon_edge.engine.runner import CHILD_WAITS, Runner
from ruvon_edge.engine.snapshots import Snapshots
from ruvon_edge.engine.step_input import input_step
from ruvon_edge.engine.workflow import Workflow
from ruvon_edge.errors import InvalidInputError, InvalidTransitionError
from ruvon_edge.ids import time_ordered_id
from ruvon_edge.providers.execution import ExecutionProvider
from ruvon_edge.providers.expression_evaluator import ExpressionEvaluator
from ruvon_edge.providers.observer import NoopObserver, WorkflowObserver
from ruvon_edge.providers.persistence import (
    AuditLogRecord,
    DuplicateIdempotencyKeyError,
    IdempotencyKeySyncedError,
    PersistenceProvider,
    Transition,
)
from ruvon_edge.providers.template_engine import TemplateEngine
from ruvon_edge.status import RETRYABLE, TERMINAL, WorkflowStatus

S = WorkflowStatus
logger = logging.getLogger(__name__)


class Engine:
    """Runs registered workflows durably on the given providers (all required here)."""

    def __init__(
        self,
        persistence: PersistenceProvider,
        registry: WorkflowRegistry,
        *,
        execution: ExecutionProvider,
        observer: WorkflowObserver,
        expression_evaluator: ExpressionEvaluator,
        template_engine: TemplateEngine,
    ) -> None:
        self.persistence = persistence
        self.registry = registry
        self.execution = execution
        self.observer = observer
        self.expression_evaluator = expression_evaluator
        self.template_engine = template_engine
        self.snapshots = Snapshots(registry)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._background: set[asyncio.Task[None]] = set()
        self._just_started: dict[str, dict[str, Any]] = {}

    # -- lifecycle -------------------------------------------------------------------------
    async def initialize(self) -> None:
        """Open the persistence and execution providers."""
        await self.persistence.initialize()
        await self.execution.initialize(self)

    async def close(self) -> None:
        """Let background runs reach a stop, then close the providers."""
        await self.join_background()
        await self.execution.close()
        await self.persistence.close()

    async def __aenter__(self) -> Engine:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def view(self, row: dict[str, Any]) -> Workflow:
        """Wrap a row for callers."""
        return Workflow(self, row, self.snapshots.state_of(row))

    # -- starting --------------------------------------------------------------------------
    async def start_workflow(
        self,
        workflow_type: str,
        initial_data: dict[str, Any] | BaseModel | None = None,
        *,
        idempotency_key: str | None = None,
        parent_id: UUID | str | None = None,
        owner_id: str | None = None,
        data_region: str | None = None,
    ) -> Workflow:
        """Create an instance (ACTIVE at its first step); the same idempotency key returns the first one.

        If that first one has been synced and deleted, nothing runs and
        ``IdempotencyKeySyncedError`` says which workflow it was and how it ended.
        """
        transition = self.new_instance(
            workflow_type,
            initial_data,
            idempotency_key=idempotency_key,
            parent_id=parent_id,
            owner_id=owner_id,
            data_region=data_region,
        )
        try:
            versions = await self.persistence.commit([transition])
        except IdempotencyKeySyncedError:
            raise  # it ran and left the device: nothing to return but what the error carries
        except DuplicateIdempotencyKeyError as dup:
            if dup.existing_id is None:
                raise
            return await self.get_workflow(dup.existing_id)
        row = transition.workflow
        row["version"] = versions[0]
        self._remember_start(row)
        await self.notify("on_workflow_started", row["id"], workflow_type)
        if self.registry.get(workflow_type).automate_start:  # the reference's automate_start
            return await self.next_step(row["id"])
        return self.view(row)

    def new_instance(
        self,
        workflow_type: str,
        initial_data: dict[str, Any] | BaseModel | None,
        *,
        idempotency_key: str | None = None,
        parent_id: UUID | str | None = None,
        owner_id: str | None = None,
        data_region: str | None = None,
    ) -> Transition:
        """Build (not commit) the creating transition of a new instance; used for children too."""
        definition = self.registry.get(workflow_type)
        model = self.registry.state_model(definition)
        data = (
            initial_data.model_dump()
            if isinstance(initial_data, BaseModel)
            else dict(initial_data or {})
        )
        storable.check(data, "initial data")
        if idempotency_key is not None:
            storable.check(idempotency_key, "idempotency key")
        try:
            state = model.model_validate(data)
        except ValidationError as exc:
            raise InvalidInputError(
                f"initial data does not fit {model.__name__}: {_one_line(exc)}"
            ) from None
        snapshot, digest = self.snapshots.store(definition)
        now = audit.now_iso()
        row: dict[str, Any] = {
            "id": time_ordered_id(),
            "workflow_type": definition.workflow_type,
            "workflow_version": definition.workflow_version,
            "status": S.ACTIVE,
            "state": state.model_dump(mode="json"),
            "current_step": definition.steps[0].name,
            "definition": snapshot,
            "parent_id": str(parent_id) if parent_id else None,
            "idempotency_key": idempotency_key,
            "owner_id": owner_id,
            "data_region": data_region,
            "saga_log": [],
            "context": {"definition_hash": digest},
            "error": None,
            "version": 0,
            "created_at": now,
            "updated_at": now,
            "completed_at": None,
        }
        started = audit.event(
            audit.WORKFLOW_STARTED,
            None,
            None,
            S.ACTIVE,
            workflow_version=definition.workflow_version,
        )
        return Transition(workflow=row, expected_version=None, audit=[started])

    # -- driving ---------------------------------------------------------------------------
    async def run(self, workflow_id: UUID | str) -> Workflow:
        """Run until the workflow finishes or must wait; return it."""
        return await self._drive(workflow_id)

    async def next_step(
        self, workflow_id: UUID | str, user_input: dict[str, Any] | None = None
    ) -> Workflow:
        """Advance one step (plus its ``automate_next`` chain); input resumes a waiting step."""
        async with self._lock(workflow_id):
            row = await self._load_for_run(workflow_id)
            if user_input is not None and row["status"] == S.WAITING_HUMAN:
                user_input = self._validated_input(row, user_input)
            elif row["status"] != S.ACTIVE:
                raise InvalidTransitionError(
                    f"cannot advance a workflow that is {row['status']}", workflow_id
                )
            return self.view(await Runner(self, row).run(user_input, max_steps=1))

    async def resume(
        self, workflow_id: UUID | str, user_input: dict[str, Any] | None = None
    ) -> Workflow:
        """Give a waiting workflow its input (validated first: bad input changes nothing) and run on."""
        return await self._drive(
            workflow_id, user_input if user_input is not None else {}, resuming=True
        )

    async def _drive(
        self,
        workflow_id: UUID | str,
        user_input: dict[str, Any] | None = None,
        resuming: bool = False,
    ) -> Workflow:
        async with self._lock(workflow_id):
            row = await self._load_for_run(workflow_id)
            if resuming:
                if row["status"] != S.WAITING_HUMAN:
                    raise InvalidTransitionError(
                        f"cannot resume a workflow that is {row['status']} (only WAITING_HUMAN)",
                        workflow_id,
                    )
                user_input = self._validated_input(row, user_input or {})
            return self.view(await Runner(self, row).run(user_input))

    def _validated_input(self, row: dict[str, Any], user_input: dict[str, Any]) -> dict[str, Any]:
        storable.check(user_input, "input")
        step = input_step(self.snapshots.definition_of(row), row)
        model = self.registry.input_model(step) if step.input_model else None
        if model is None:
            return dict(user_input)
        try:
            return model.model_validate(user_input).model_dump()
        except ValidationError as exc:
            raise InvalidInputError(
                f"input does not fit {model.__name__}: {_one_line(exc)}", row["id"], step.name
            ) from None

    async def enable_saga_mode(self, workflow_id: UUID | str) -> Workflow:
        """Make this instance compensate on failure (the reference's per-instance switch)."""
        async with self._lock(workflow_id):
            runner = Runner(self, await self._load_for_run(workflow_id))
            await runner.enable_saga_mode()
            return self.view(runner.row)

    async def cancel(self, workflow_id: UUID | str) -> Workflow:
        """Stop a workflow for good: a live one, or a failed one nobody will retry (it syncs again)."""
        return await self._set_status(
            workflow_id, S.CANCELLED, audit.WORKFLOW_CANCELLED, TERMINAL - RETRYABLE, run=False
        )

    async def retry(self, workflow_id: UUID | str) -> Workflow:
        """Restart a FAILED workflow at the step that failed, and run it."""
        return await self._set_status(
            workflow_id,
            S.ACTIVE,
            audit.WORKFLOW_RETRIED,
            TERMINAL - RETRYABLE,
            run=True,
            allowed=RETRYABLE,
        )

    async def _set_status(
        self,
        workflow_id: UUID | str,
        new: str,
        event: str,
        refused: frozenset[str],
        *,
        run: bool,
        allowed: frozenset[str] | None = None,
    ) -> Workflow:
        async with self._lock(workflow_id):
            row = await self._load(workflow_id)
            old = row["status"]
            if old in refused or (allowed is not None and old not in allowed):
                verb = "retry" if run else "cancel"
                raise InvalidTransitionError(f"cannot {verb} a workflow that is {old}", workflow_id)
            runner = Runner(self, row)
            draft = runner._draft()
            draft["status"] = new
            if run:
                draft["error"] = None
            await runner._commit(draft, [audit.event(event, row.get("current_step"), old, new)], [])
            if new == S.CANCELLED:
                from ruvon_edge.engine.tasks import cancel_awaited_task

                await cancel_awaited_task(self, row)
            await self.notify("on_workflow_status_changed", row["id"], old, new)
            if run:
                await runner.run()
            return self.view(runner.row)

    # -- reading ---------------------------------------------------------------------------
    async def get_workflow(self, workflow_id: UUID | str) -> Workflow:
        """Return the workflow as last committed (``WorkflowNotFoundError`` if unknown)."""
        return self.view(await self._load(workflow_id))

    async def list_workflows(
        self,
        status: str | None = None,
        workflow_type: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[Workflow]:
        """Newest first, filtered and paginated."""
        rows = await self.persistence.list_workflows(status, workflow_type, limit, offset)
        return [self.view(r) for r in rows]

    async def get_audit_log(self, workflow_id: UUID | str) -> list[AuditLogRecord]:
        """The workflow's whole audit trail, oldest first."""
        return await self.persistence.get_audit_logs(str(workflow_id))

    # -- plumbing --------------------------------------------------------------------------
    async def _load(self, workflow_id: UUID | str) -> dict[str, Any]:
        # The contract types ids as UUID; every provider also takes their str form.
        row = await self.persistence.load_workflow(workflow_id)  # type: ignore[arg-type]
        row.setdefault("context", {})
        row.setdefault("saga_log", [])
        return row

    def _remember_start(self, row: dict[str, Any]) -> None:
        """Keep a just-created row so the usual ``start_workflow`` then ``run`` reads nothing back."""
        if len(self._just_started) >= 256:
            self._just_started.pop(next(iter(self._just_started)))
        self._just_started[row["id"]] = row

    async def _load_for_run(self, workflow_id: UUID | str) -> dict[str, Any]:
        """The row to drive: the one this engine just created, else the stored one.

        Using the creating row is as safe as reading it: a concurrent writer
        would make the first step's compare-and-set fail either way.
        """
        row = self._just_started.pop(str(workflow_id), None)
        if row is None:
            return await self._load(workflow_id)
        return {**row, "context": copy.deepcopy(row["context"])}

    def _lock(self, workflow_id: UUID | str) -> asyncio.Lock:
        key = str(workflow_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def notify(self, hook: str, *args: Any) -> None:
        """Call an observer hook; an observer that raises is logged and never changes the outcome."""
        if type(self.observer) is NoopObserver:
            return
        try:
            await getattr(self.observer, hook)(*args)
        except Exception as exc:  # observers must not change a workflow's outcome
            logger.warning(
                "observer_failed", extra={"hook": hook, "error": f"{type(exc).__name__}: {exc}"}
            )

    # -- async tasks -----------------------------------------------------------------------
    async def complete_async_task(
        self, task_id: str, result: dict[str, Any] | None = None, error: str | None = None
    ) -> Workflow:
        """Record a task's outcome (finishes its row), then the waiting workflow merges it and runs on.

        ``error`` fails the step (saga compensation in ``saga_mode``). A report
        for a task the workflow no longer waits for changes nothing.
        """
        from ruvon_edge.engine import tasks

        task_id = str(task_id)
        return self.view(
            await tasks.apply(self, task_id, await tasks.find_task(self, task_id), result, error)
        )

    async def run_async_task(self, task: dict[str, Any]) -> Workflow:
        """Run a task a worker claimed (``persistence.claim_next_task``) and complete it."""
        from ruvon_edge.engine import tasks

        return self.view(await tasks.run_task(self, task))

    # -- children --------------------------------------------------------------------------
    async def on_child_status(
        self, child_id: UUID | str, parent_id: UUID | str, child_status: str
    ) -> Workflow:
        """A child finished or waits: the waiting parent's step reads it again and the parent runs on.

        Called through ``execution.report_child_status_to_parent``; a parent that
        is no longer waiting on a child is left alone.
        """
        async with self._lock(parent_id):
            row = await self._load(parent_id)
            if row["status"] in CHILD_WAITS:
                row = await Runner(self, row).run()
            return self.view(row)

    def is_running(self, workflow_id: UUID | str) -> bool:
        """True while a coroutine of this engine drives the workflow (holds its lock)."""
        lock = self._locks.get(str(workflow_id))
        return lock is not None and lock.locked()

    def run_in_background(self, workflow_id: UUID | str) -> None:
        """Run a workflow without waiting for it (FIRE_AND_FORGET); ``close`` waits for these runs."""
        task = asyncio.get_running_loop().create_task(
            self._run_quietly(workflow_id), context=contextvars.Context()
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def join_background(self) -> None:
        """Wait until every background run has finished or must wait."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _run_quietly(self, workflow_id: UUID | str) -> None:
        try:
            await self.run(workflow_id)
        except Exception as exc:  # nobody awaits this run; the workflow stays resumable by `run`
            logger.warning(
                "background_run_failed",
                extra={"workflow_id": str(workflow_id), "error": f"{type(exc).__name__}: {exc}"},
            )


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts)


__all__ = ["Engine"]

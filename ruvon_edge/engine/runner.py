"""The runner of one workflow instance: load → run a step → one commit → route.

Each step runs outside any transaction; what it did (merged state, new
position and status, audit rows, saga record, duration metric, queued tasks,
child workflows) is then written by ONE ``persistence.commit``. The runner
keeps the row it committed, so a multi-step run reads the database once.
A row is changed only on a copy: if the commit fails, nothing in memory lies.
"""

from __future__ import annotations

import copy
import logging
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from ruvon_edge.definition.models import StepDefinition, WorkflowDefinition
from ruvon_edge.directives import WorkflowDirective
from ruvon_edge.engine import audit, injection
from ruvon_edge.engine.context import StepContext
from ruvon_edge.engine.invoke import call_step
from ruvon_edge.engine.merge import MergeConflictError, merge_result
from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.engine.step_input import validated_input
from ruvon_edge.engine.steps import handler_for
from ruvon_edge.errors import ExpressionError, StepFailedError
from ruvon_edge.providers.persistence import Transition
from ruvon_edge.status import TERMINAL, WorkflowStatus

if TYPE_CHECKING:
    from ruvon_edge.engine.core import Engine

S = WorkflowStatus
logger = logging.getLogger(__name__)

CHILD_WAITS = frozenset({S.PENDING_SUB_WORKFLOW, S.WAITING_CHILD_HUMAN_INPUT})
"""A parent waiting on its child: running its step again reads (or runs) the child."""

DRIVING: ContextVar[frozenset[str]] = ContextVar("ruvon_driving", default=frozenset())
"""Workflows a runner up this call chain is driving: a child's report to them is not needed."""


class Runner:
    """Drives one instance until it finishes, must wait, or has taken its step budget."""

    def __init__(self, engine: Engine, row: dict[str, Any]) -> None:
        self.engine = engine
        self.row = row
        self.definition: WorkflowDefinition = engine.snapshots.definition_of(row)
        self.state_model: type[BaseModel] = engine.registry.state_model(self.definition)

    # -- driving -----------------------------------------------------------------------
    async def run(
        self, user_input: dict[str, Any] | None = None, max_steps: int | None = None
    ) -> dict[str, Any]:
        """Run steps; ``user_input`` goes to the first (waiting) step; return the last committed row."""
        token = DRIVING.set(DRIVING.get() | {self.row["id"]})
        try:
            return await self._run(user_input, max_steps)
        finally:
            DRIVING.reset(token)

    async def _run(
        self, user_input: dict[str, Any] | None, max_steps: int | None
    ) -> dict[str, Any]:
        taken = 0
        child_read_at = None  # row version at which a waiting parent last looked at its child
        while True:
            if self.row["context"].get("compensating"):
                await self.compensate()
                break
            status = self.row["status"]
            resuming = user_input is not None and status == S.WAITING_HUMAN
            if status in CHILD_WAITS:
                if child_read_at == self.row["version"]:
                    break  # the child has not moved since we last looked
                child_read_at = self.row["version"]
            elif status != S.ACTIVE and not resuming:
                break
            step = self.definition.step(self.row["current_step"])
            user_input = await self.run_step(step, user_input)
            if user_input is not None or self.row["status"] in CHILD_WAITS:
                continue  # a paused step completed and hands its input on, or a child runs next
            taken += 1
            if max_steps is not None and taken >= max_steps and not step.automate_next:
                break
        return self.row

    async def run_step(
        self, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """Run one step and commit what it did (or its failure); return input it hands on."""
        row = self._draft()
        old_status = self.row["status"]
        state = self.state_model.model_validate(row["state"])
        context = StepContext(
            workflow_id=row["id"],
            workflow_type=row["workflow_type"],
            step_name=step.name,
            user_input=user_input or {},
            parent_id=row.get("parent_id"),
            previous_step=row["context"].get("previous_step"),
            sub_workflow_results=row["state"].get("sub_workflow_results") or {},
            validated_input=validated_input(self.engine.registry, step, user_input),
            previous_step_result=row["context"].get("previous_step_result"),
        )
        run = StepRun(
            self.engine,
            self.definition,
            step,
            row,
            state,
            context,
            user_input,
            save_progress=lambda: self.checkpoint(row),
        )
        started = time.perf_counter()
        try:
            outcome = await handler_for(step.type)(run)
            if outcome.wait is None:
                new_state = self._merged_state(step, state, outcome)
                definition, injected = injection.inject(
                    self.definition,
                    step,
                    new_state.model_dump(mode="json"),
                    self.engine.expression_evaluator,
                )
                next_step = self._next_step(step, outcome, new_state, injected)
        except (Exception, WorkflowDirective) as exc:  # a step's failure is data, not a crash
            await self.fail(row, step, old_status, exc)
            return None
        duration_ms = (time.perf_counter() - started) * 1000
        events: list[dict[str, Any]] = []
        if user_input is not None and old_status == S.WAITING_HUMAN:
            events.append(audit.event(audit.WORKFLOW_RESUMED, step.name, old_status, S.ACTIVE))
        if outcome.wait is not None:
            await self._wait(row, step, old_status, outcome, events)
            return None
        if injected:
            digest = self.engine.snapshots.store(definition)[1]
            events.append(injection.note(row, step, definition, injected, digest))
        row["state"] = new_state.model_dump(mode="json")
        row["current_step"] = next_step
        row["context"]["previous_step"] = step.name
        row["context"]["previous_step_result"] = to_jsonable_python(outcome.result, fallback=str)
        row["context"].get("steps", {}).pop(step.name, None)
        if step.compensate_function:
            row["saga_log"] = [
                *(row.get("saga_log") or []),
                {"step": step.name, "function": step.compensate_function},
            ]
        row["status"] = S.ACTIVE if next_step is not None else S.COMPLETED
        events.append(
            audit.event(
                audit.STEP_COMPLETED,
                step.name,
                old_status,
                row["status"],
                duration_ms=round(duration_ms, 3),
                next_step=next_step,
                **outcome.details,
            )
        )
        events.extend(outcome.events)
        if next_step is None:
            events.append(audit.event(audit.WORKFLOW_COMPLETED, step.name, old_status, S.COMPLETED))
        await self._commit(row, events, [audit.duration_metric(step.name, duration_ms)], outcome)
        self.definition = definition
        notify = self.engine.notify
        if user_input is not None and old_status == S.WAITING_HUMAN:
            await notify("on_workflow_resumed", row["id"], step.name, user_input)
        await notify("on_step_executed", row["id"], step.name, outcome.result, duration_ms)
        if old_status != row["status"]:
            await notify("on_workflow_status_changed", row["id"], old_status, row["status"])
        if row["status"] == S.COMPLETED:
            await notify("on_workflow_completed", row["id"])
        return user_input if outcome.hand_on_input and next_step is not None else None

    # -- outcomes ------------------------------------------------------------------------
    async def _wait(
        self,
        row: dict[str, Any],
        step: StepDefinition,
        old_status: str,
        outcome: Outcome,
        events: list,
    ) -> None:
        if outcome.state is not None:  # changed in place before a pause
            row["state"] = outcome.state.model_dump(mode="json")
        if outcome.result and outcome.merge:
            row["state"] = merge_result(
                row["state"], outcome.result, step.merge_strategy, step.merge_conflict
            )
        if (
            old_status == outcome.wait
            and not (events or outcome.children or outcome.tasks)
            and (row["state"] == self.row["state"] and row["context"] == self.row["context"])
        ):
            return  # still waiting for the same thing: nothing to write
        row["status"] = outcome.wait
        events.append(
            audit.event(
                audit.WORKFLOW_WAITING,
                step.name,
                old_status,
                outcome.wait,
                reason=outcome.wait_reason,
            )
        )
        await self._commit(row, events, [], outcome)
        if old_status != outcome.wait:
            await self.engine.notify(
                "on_workflow_status_changed", row["id"], old_status, outcome.wait
            )
        if outcome.wait == S.WAITING_HUMAN:
            await self.engine.notify(
                "on_workflow_paused", row["id"], step.name, outcome.wait_reason
            )

    async def fail(
        self, row: dict[str, Any], step: StepDefinition, old_status: str, exc: BaseException
    ) -> None:
        """Record a step's failure; in saga mode start compensating, else end FAILED.

        An exception may name the final status in ``workflow_status`` (a failed
        child gives FAILED_CHILD_WORKFLOW, after compensating in saga mode).
        """
        error = f"step {step.name!r} failed: {describe(exc)}"
        final = getattr(exc, "workflow_status", None) or S.FAILED
        row["error"] = error
        events = [audit.event(audit.STEP_FAILED, step.name, old_status, None, error=error)]
        if self.definition.saga_mode or row["context"].get("saga_mode"):
            row["status"] = S.ACTIVE
            row["context"]["compensating"] = True
            if final != S.FAILED:
                row["context"]["failed_status"] = final
            events[0]["new_status"] = S.ACTIVE
            await self._commit(row, events, [])
            await self.compensate()
            return
        row["status"] = final
        events[0]["new_status"] = final
        events.append(audit.event(audit.WORKFLOW_FAILED, step.name, old_status, final, error=error))
        await self._commit(row, events, [])
        log_failed(self.row)
        await self.engine.notify("on_workflow_status_changed", row["id"], old_status, final)
        await self.engine.notify("on_workflow_failed", row["id"], error)

    async def compensate(self) -> None:
        """Undo completed steps in reverse order, one commit each, so a crash resumes where it stopped."""
        while self.row.get("saga_log"):
            row = self._draft()
            entry = row["saga_log"][-1]
            index = len(row["saga_log"]) - 1
            await self.engine.notify("on_compensation_started", row["id"], entry["step"], index)
            error = None
            try:
                state = self.state_model.model_validate(row["state"])
                context = StepContext(
                    row["id"], row["workflow_type"], entry["step"], parent_id=row.get("parent_id")
                )
                function = self.engine.registry.resolve(entry["function"])
                new_state, result, _ = await call_step(
                    self.engine.execution, function, state, context, {}, retry=None, timeout=None
                )
                row["state"] = merge_result(new_state.model_dump(mode="json"), result)
            except (
                Exception,
                WorkflowDirective,
            ) as exc:  # one failing compensation must not stop the others
                error = describe(exc)
                row["context"].setdefault("compensation_failures", []).append(
                    {"step": entry["step"], "error": error}
                )
            row["saga_log"] = row["saga_log"][:-1]
            kind = audit.COMPENSATION_FAILED if error else audit.COMPENSATION_COMPLETED
            await self._commit(
                row, [audit.event(kind, entry["step"], S.ACTIVE, S.ACTIVE, error=error)], []
            )
            await self.engine.notify(
                "on_compensation_completed", row["id"], entry["step"], error is None, error
            )
        row = self._draft()
        row["status"] = final = row["context"].pop("failed_status", S.FAILED_ROLLED_BACK)
        row["context"].pop("compensating", None)
        failures = row["context"].get("compensation_failures", [])
        event = audit.event(
            audit.WORKFLOW_ROLLED_BACK,
            row["current_step"],
            S.ACTIVE,
            final,
            error=row.get("error"),
            compensation_failures=failures,
        )
        await self._commit(row, [event], [])
        log_failed(self.row)
        await self.engine.notify("on_workflow_status_changed", row["id"], S.ACTIVE, final)
        await self.engine.notify("on_workflow_failed", row["id"], row.get("error"))

    async def enable_saga_mode(self) -> None:
        """Record the per-instance saga switch (one commit, audited)."""
        if self.row["context"].get("saga_mode"):
            return
        row = self._draft()
        row["context"]["saga_mode"] = True
        status = row["status"]
        event = audit.event(audit.SAGA_MODE_ENABLED, row.get("current_step"), status, status)
        await self._commit(row, [event], [])

    async def checkpoint(self, row: dict[str, Any], events: list[dict] | None = None) -> None:
        """Commit a running step's progress (its memory, the state so far) without finishing the step."""
        saved = dict(row)
        saved["context"] = copy.deepcopy(row["context"])
        await self._commit(saved, list(events or []), [])

    # -- helpers -------------------------------------------------------------------------
    def _draft(self) -> dict[str, Any]:
        """A copy of the current row that a step may change freely."""
        row = dict(self.row)
        row["context"] = copy.deepcopy(self.row["context"])
        return row

    def _merged_state(self, step: StepDefinition, state: BaseModel, outcome: Outcome) -> BaseModel:
        base = (outcome.state or state).model_dump(mode="json")
        merged = (
            merge_result(base, outcome.result, step.merge_strategy, step.merge_conflict)
            if outcome.merge
            else base
        )
        try:
            return self.state_model.model_validate(merged)
        except ValidationError as exc:
            raise StepFailedError(
                f"result does not fit the state model: {_first_error(exc)}",
                self.row["id"],
                step.name,
            ) from None

    def _next_step(
        self, step: StepDefinition, outcome: Outcome, state: BaseModel, injected: list[str]
    ) -> str | None:
        if outcome.jump is not None:
            if not any(s.name == outcome.jump for s in self.definition.steps):
                raise StepFailedError(
                    f"jump to unknown step {outcome.jump!r}", self.row["id"], step.name
                )
            return outcome.jump
        if step.routes:
            evaluator = self.engine.expression_evaluator
            scope = {"state": state}
            for route in step.routes:
                if route.default is not None:
                    return route.default
                if evaluator.evaluate(route.condition or "", scope):
                    return route.next_step
            raise StepFailedError(
                "no route matched and there is no default", self.row["id"], step.name
            )
        if injected:
            return injected[0]
        index = self.definition.index_of(step.name) + 1
        return self.definition.steps[index].name if index < len(self.definition.steps) else None

    async def _commit(
        self,
        row: dict[str, Any],
        events: list[dict],
        metrics: list[dict],
        outcome: Outcome | None = None,
    ) -> None:
        now = audit.now_iso()
        row["updated_at"] = now
        if row["status"] in TERMINAL and not row.get("completed_at"):
            row["completed_at"] = now
        transition = Transition(
            workflow=row,
            expected_version=self.row["version"],
            audit=events,
            metrics=metrics,
            tasks=outcome.tasks if outcome else [],
        )
        children = outcome.children if outcome else []
        versions = await self.engine.persistence.commit([transition, *children])
        row["version"] = versions[0]
        previous_status = self.row["status"]
        self.row = row
        for child in children:
            await self._started(child.workflow)
        if row.get("parent_id") and row["status"] not in (previous_status, S.ACTIVE):
            await self._report_to_parent(row)

    async def _started(self, child: dict[str, Any]) -> None:
        """Announce a workflow this commit created; one without a parent link runs in the background."""
        await self.engine.notify("on_workflow_started", child["id"], child["workflow_type"])
        if child.get("parent_id") == self.row["id"]:
            await self.engine.notify(
                "on_child_workflow_started", self.row["id"], child["id"], child["workflow_type"]
            )
        else:
            self.engine.run_in_background(child["id"])

    async def _report_to_parent(self, row: dict[str, Any]) -> None:
        """Tell the parent this child finished or waits; a failed report is caught up by ``run(parent)``."""
        if row["parent_id"] in DRIVING.get():
            return  # the parent's runner is up this call chain, reading this child as it returns
        try:
            await self.engine.execution.report_child_status_to_parent(
                row["id"], row["parent_id"], row["status"]
            )
        except Exception as exc:  # the child's commit stands whatever happens to the parent
            logger.warning(
                "child_report_failed",
                extra={
                    "workflow_id": row["id"],
                    "parent_id": row["parent_id"],
                    "error": describe(exc),
                },
            )


def log_failed(row: dict[str, Any]) -> None:
    """One warning per workflow that ends FAILED*: the line an operator looks for first."""
    logger.warning(
        "workflow_failed",
        extra={
            "workflow_type": row["workflow_type"],
            "workflow_id": str(row["id"]),
            "status": row["status"],
            "step": row.get("current_step"),
            "error": row.get("error"),
        },
    )


def describe(exc: BaseException) -> str:
    """``Type: message`` for an exception, for errors stored on the workflow."""
    if isinstance(exc, StepFailedError | ExpressionError | MergeConflictError):
        return getattr(exc, "reason", None) or str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc}: {err.get('msg')}" if loc else str(err.get("msg"))

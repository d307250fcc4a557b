"""What the remote execution providers share (PostgresExecutor, CeleryExecutor).

Engine side: ``RemoteExecutionProvider`` turns an ASYNC or PARALLEL task into
a self-contained JSON *payload* -- the function's dotted path, the state, the
state model's dotted path, the step context, kwargs, the step's retry policy
and timeout -- so a worker needs nothing but the code. Everything else (sync
step functions, sub-workflows) still runs in the engine's process.

Worker side: ``TaskRunner`` runs a payload the way the engine runs a step:
code resolved only inside ``allowed_modules`` (the same allow-list as the
registry, so a forged payload cannot call ``os.system``), the state hydrated
into its pydantic model, a ``StepContext``, the retry policy with backoff,
the timeout, and the result normalised to a JSON dict. Failures are data
(``(None, "ErrorType: message")``), never exceptions.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from ruvon_edge.implementations.execution._local import LocalExecutionProvider

FINISHED = ("COMPLETED", "FAILED", "CANCELLED")


class RemoteExecutionProvider(LocalExecutionProvider):
    """An execution provider whose ASYNC/PARALLEL tasks run in worker processes."""

    dispatches_remotely = True  # the engine calls dispatch_async_task just before its commit

    async def payload_for(
        self,
        workflow_id: Any,
        step_name: str,
        function_path: str,
        state: Any,
        context: Any,
        kwargs: dict | None = None,
    ) -> dict[str, Any]:
        """Build a task payload; the state model (and, for ASYNC steps, retry and timeout) come from the definition.

        PARALLEL tasks (``kwargs`` given) run once each, as they do locally: the
        step's ``timeout_seconds`` bounds the whole fan-out on the engine side.
        """
        row = await self.engine.persistence.load_workflow(str(workflow_id))
        definition = self.engine.snapshots.definition_of(
            {**row, "context": row.get("context") or {}}
        )
        retry, timeout = None, None
        if kwargs is None:
            step = next((s for s in definition.steps if s.name == step_name), None)
            if step is not None:
                retry = step.retry.model_dump() if step.retry is not None else None
                timeout = step.timeout_seconds
        if isinstance(state, BaseModel):
            state = state.model_dump(mode="json")
        if context is not None and not isinstance(context, dict):
            context = context.as_dict()
        return {
            "function": function_path,
            "state": state,
            "state_model": definition.initial_state_model_path,
            "context": {**(context or {}), "workflow_id": str(workflow_id), "step_name": step_name},
            "kwargs": kwargs or {},
            "retry": retry,
            "timeout": timeout,
        }

    async def dispatch_parallel_tasks(
        self, workflow_id, tasks: list[dict], state, execution_context: Any = None
    ) -> list[dict]:
        """Send one task per PARALLEL task and wait for all; a timeout (cancellation) cancels the unfinished ones."""
        step_name = getattr(execution_context, "step_name", None) or ""
        base = await self.payload_for(
            workflow_id, step_name, "", state, execution_context, kwargs={}
        )
        jobs = [
            (
                str(uuid.uuid4()),
                t["name"],
                {**base, "function": t["function"], "kwargs": dict(t.get("kwargs") or {})},
            )
            for t in tasks
        ]  # one read of the workflow row for the whole fan-out
        await self.submit_parallel(workflow_id, jobs)
        ids = [task_id for task_id, _, _ in jobs]
        try:
            done = await self.wait_all(ids)
        except BaseException:
            await asyncio.shield(self.cancel_all(ids))
            raise
        return [parallel_entry(name, *done[task_id]) for task_id, name, _ in jobs]

    async def submit_parallel(
        self, workflow_id: Any, jobs: list[tuple[str, str, dict[str, Any]]]
    ) -> None:
        """Hand ``(task_id, task name, payload)`` jobs to the workers."""
        raise NotImplementedError

    async def wait_all(self, task_ids: list[str]) -> dict[str, tuple[str, Any, str | None]]:
        """Wait until every task finished; return ``{task_id: (status, result, error)}``."""
        raise NotImplementedError

    async def cancel_all(self, task_ids: list[str]) -> None:
        """Cancel whatever of ``task_ids`` has not finished."""
        raise NotImplementedError


def parallel_entry(name: str, status: str, result: Any, error: str | None) -> dict[str, Any]:
    """One ``dispatch_parallel_tasks`` entry from a finished task."""
    if status == "COMPLETED":
        return {"name": name, "status": "COMPLETED", "result": result}
    return {"name": name, "status": "FAILED", "error": error or f"the task was {status.lower()}"}


class TaskRunner:
    """Runs task payloads in a worker, importing code only from ``allowed_modules``."""

    def __init__(self, allowed_modules: list[str] | tuple[str, ...]) -> None:
        from ruvon_edge.definition.registry import WorkflowRegistry

        if not allowed_modules:
            raise ValueError("a worker needs at least one allowed module (--allow-module)")
        self.registry = WorkflowRegistry(allowed_modules=allowed_modules)
        self._permissive = create_model("TaskState", __config__=ConfigDict(extra="allow"))

    async def run(self, payload: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """Run one payload with its retry policy; return ``(result, None)`` or ``(None, error)``."""
        from ruvon_edge import StepContext

        try:
            function = self.registry.resolve(payload["function"])
            model = (
                self.registry.resolve(payload["state_model"])
                if payload.get("state_model")
                else self._permissive
            )
        except (
            Exception
        ) as exc:  # refused or missing code fails the task, it does not crash the worker
            return None, _describe(exc)
        retry = payload.get("retry") or {}
        attempts = max(int(retry.get("max_attempts", 1)), 1)
        fields = {
            k: v
            for k, v in (payload.get("context") or {}).items()
            if k in StepContext.__dataclass_fields__
        }
        from ruvon_edge.definition.state import mapping_model

        model = mapping_model(model)  # tasks read their state as object and as mapping (§2a)
        for attempt in range(1, attempts + 1):
            state = model.model_validate(payload.get("state") or {})
            context = StepContext(**{"workflow_type": "", **fields, "attempt": attempt})
            try:
                return await self._call(function, state, context, payload), None
            except Exception as exc:  # the step's failure, retried per its policy
                if attempt == attempts:
                    return None, _describe(exc)
                await asyncio.sleep(_backoff(retry, attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    async def _call(
        function: Any, state: Any, context: Any, payload: dict[str, Any]
    ) -> dict[str, Any]:
        kwargs = payload.get("kwargs") or {}
        if inspect.iscoroutinefunction(function):
            call = function(state, context, **kwargs)
        else:
            call = asyncio.to_thread(function, state, context, **kwargs)
        timeout = payload.get("timeout")
        raw = await (asyncio.wait_for(call, timeout) if timeout else call)
        if inspect.isawaitable(raw):
            raw = await raw
        if raw is None:
            return {}
        if isinstance(raw, BaseModel):
            return raw.model_dump(mode="json")
        if not isinstance(raw, dict):
            raise TypeError(
                f"a task function must return a dict, a pydantic model or None, not {type(raw).__name__}"
            )
        json.dumps(
            raw
        )  # the result travels as JSON: refuse what cannot, here, with the task's error
        return raw


def _backoff(retry: dict[str, Any], attempt: int) -> float:
    base = float(retry.get("backoff_seconds", 0.0))
    delay = base * float(retry.get("backoff_multiplier", 2.0)) ** (attempt - 1)
    return min(delay, float(retry.get("max_backoff_seconds", 60.0)))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return "TimeoutError: the task timed out"
    return f"{type(exc).__name__}: {exc}"

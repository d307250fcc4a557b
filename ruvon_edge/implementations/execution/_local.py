"""What the in-process execution providers share: tasks live in the engine's own store.

ASYNC tasks are rows in the persistence provider's task table (written in the
same transaction as the PENDING_ASYNC status, see the ASYNC handler), claimed
by ``ruvon-edge serve``; children are started through the engine.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any
from uuid import UUID

from ruvon_edge.implementations.execution._step_threads import STEP_THREADS
from ruvon_edge.providers.execution import ExecutionContext, ExecutionProvider


class LocalExecutionProvider(ExecutionProvider):
    """Runs step functions in this process: async ones on the loop, sync ones in ``executor``."""

    executor: Executor | None = None  # None: the process-wide ``STEP_THREADS``

    async def execute_sync_step_function(
        self, function: Callable[..., Any], state, context, **user_input
    ) -> dict:
        if inspect.iscoroutinefunction(function):
            result = await function(state, context, **user_input)
        else:
            call = lambda: function(state, context, **user_input)  # noqa: E731
            if self.executor is None:
                result = await STEP_THREADS.run(call)
            else:
                result = await asyncio.get_running_loop().run_in_executor(self.executor, call)
            if inspect.isawaitable(result):
                result = await result
        return result

    async def run_task(self, task: dict[str, Any], state, context) -> dict[str, Any]:
        """Run one PARALLEL task; failures become data (``status: FAILED``), never exceptions."""
        try:
            function = self.engine.registry.resolve(task["function"])
            kwargs = dict(task.get("kwargs") or {})
            result = await self.execute_sync_step_function(function, state, context, **kwargs)
            return {"name": task["name"], "status": "COMPLETED", "result": result}
        except Exception as exc:  # a task's failure is reported, the step decides
            return {
                "name": task["name"],
                "status": "FAILED",
                "error": f"{type(exc).__name__}: {exc}",
            }

    async def dispatch_async_task(
        self,
        workflow_id,
        step_name,
        function_path,
        state,
        context,
        execution_context: ExecutionContext | None = None,
    ) -> str:
        task_id = (context or {}).get("task_id") or str(uuid.uuid4())
        await self.engine.persistence.enqueue_task(
            {
                "task_id": task_id,
                "workflow_id": str(workflow_id),
                "step_name": step_name,
                "function_path": function_path,
                "payload": {"state": state, "context": context},
            }
        )
        return task_id

    async def dispatch_parallel_tasks(
        self,
        workflow_id,
        tasks: list[dict],
        state,
        execution_context: ExecutionContext | None = None,
    ) -> list[dict]:
        return [await self.run_task(t, state, execution_context) for t in tasks]

    async def dispatch_sub_workflow(
        self,
        parent_workflow_id,
        workflow_type: str,
        initial_data: dict,
        owner_id=None,
        data_region=None,
    ) -> UUID:
        child = await self.engine.start_workflow(
            workflow_type,
            initial_data,
            parent_id=parent_workflow_id,
            owner_id=owner_id,
            data_region=data_region,
        )
        return child.id

    async def report_child_status_to_parent(
        self, child_workflow_id, parent_workflow_id, child_status: str
    ) -> None:
        on_child = getattr(self.engine, "on_child_status", None)
        if on_child is not None:
            await on_child(child_workflow_id, parent_workflow_id, child_status)

    async def get_task_status(self, task_id: str) -> str:
        return (await self.engine.persistence.get_task(task_id))["status"]

    async def cancel_task(self, task_id: str) -> bool:
        return await self.engine.persistence.cancel_task(task_id)

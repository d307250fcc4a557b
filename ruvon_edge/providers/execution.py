"""Execution provider interface: where step functions, tasks and child workflows run."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any
from uuid import UUID


@dataclass
class ExecutionContext:
    """Who and what a piece of work runs for; travels with dispatched tasks."""

    trace_id: str | None
    actor_id: str | None
    workflow_id: str
    step_name: str
    attempt: int = 1


class ExecutionProvider(ABC):
    """Runs step functions (inline, in threads, or on remote workers)."""

    async def initialize(self, engine: Any) -> None:
        """Remember the engine, for providers that start child workflows or report back."""
        self.engine = engine

    async def close(self) -> None:
        """Release workers and connections."""

    @abstractmethod
    async def dispatch_async_task(
        self,
        workflow_id,
        step_name: str,
        function_path: str,
        state: dict,
        context: dict,
        execution_context: ExecutionContext | None = None,
    ) -> str:
        """Queue ``function_path`` to run outside the workflow; return the task id."""

    @abstractmethod
    async def dispatch_parallel_tasks(
        self,
        workflow_id,
        tasks: list[dict],
        state: dict,
        execution_context: ExecutionContext | None = None,
    ) -> list[dict]:
        """Run ``tasks`` (``name, function, kwargs``) and return one ``{name, status, result|error}`` each."""

    @abstractmethod
    async def dispatch_sub_workflow(
        self,
        parent_workflow_id,
        workflow_type: str,
        initial_data: dict,
        owner_id: str | None = None,
        data_region: str | None = None,
    ) -> UUID:
        """Start a child workflow of ``parent_workflow_id``; return its id."""

    @abstractmethod
    async def report_child_status_to_parent(
        self, child_workflow_id, parent_workflow_id, child_status: str
    ) -> None:
        """Tell the parent that its child reached ``child_status``."""

    @abstractmethod
    async def execute_sync_step_function(self, function, state, context, **user_input) -> dict:
        """Call a step function and return its result dict (sync functions off the event loop)."""

    @abstractmethod
    async def get_task_status(self, task_id: str) -> str:
        """Return QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED."""

    @abstractmethod
    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a task that has not finished; True if it was cancelled."""

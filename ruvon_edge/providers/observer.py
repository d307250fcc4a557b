"""Observer interface: lifecycle hooks, every one an async no-op by default.

The engine calls observers through a guard: an observer that raises is
logged and never changes a workflow's outcome.
"""

from __future__ import annotations

from abc import ABC
from typing import Any


class WorkflowObserver(ABC):  # noqa: B024 - an ABC whose hooks all default to no-ops
    """Subclass and override the hooks you need."""

    async def on_workflow_started(self, workflow_id, workflow_type: str) -> None:
        """A workflow was created."""

    async def on_step_executed(
        self, workflow_id, step_name: str, result: Any, duration_ms: float | None = None
    ) -> None:
        """A step finished and its result was committed."""

    async def on_workflow_completed(self, workflow_id) -> None:
        """A workflow reached COMPLETED."""

    async def on_workflow_failed(self, workflow_id, error: Any) -> None:
        """A workflow reached a failed status."""

    async def on_workflow_status_changed(
        self, workflow_id, old_status: str, new_status: str
    ) -> None:
        """A workflow's status changed."""

    async def on_workflow_paused(self, workflow_id, step_name: str, reason: str) -> None:
        """A workflow waits for a human."""

    async def on_workflow_resumed(self, workflow_id, step_name: str, resume_data: Any) -> None:
        """A waiting workflow got its input."""

    async def on_compensation_started(self, workflow_id, step_name: str, step_index: int) -> None:
        """A saga compensation is about to run."""

    async def on_compensation_completed(
        self, workflow_id, step_name: str, success: bool, error: Any = None
    ) -> None:
        """A saga compensation finished."""

    async def on_child_workflow_started(self, parent_id, child_id, child_type: str) -> None:
        """A sub-workflow was started."""


class NoopObserver(WorkflowObserver):
    """Observes nothing."""


__all__ = ["NoopObserver", "WorkflowObserver"]

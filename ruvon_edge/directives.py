"""Control-flow directives a step may raise.

They derive from ``BaseException`` so that ``except Exception`` in user code
cannot swallow them by accident, the same way ``KeyboardInterrupt`` escapes.
"""

from __future__ import annotations

from typing import Any


class WorkflowDirective(BaseException):
    """Base of the directives; the runner catches them, user code should not."""


class WorkflowJumpDirective(WorkflowDirective):
    """Continue at step ``target`` instead of the next one (the step's result still merges)."""

    def __init__(self, target: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(target)
        self.target = target
        self.result = result or {}


class WorkflowPauseDirective(WorkflowDirective):
    """Stop here and wait for ``engine.resume`` (status WAITING_HUMAN)."""

    def __init__(self, reason: str = "paused", result: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result = result or {}


class StartSubWorkflowDirective(WorkflowDirective):
    """Start a child workflow and wait for it (status PENDING_SUB_WORKFLOW)."""

    def __init__(
        self,
        workflow_type: str,
        initial_data: dict[str, Any] | None = None,
        owner_id: str | None = None,
        data_region: str | None = None,
    ) -> None:
        super().__init__(workflow_type)
        self.workflow_type = workflow_type
        self.initial_data = initial_data or {}
        self.owner_id = owner_id
        self.data_region = data_region

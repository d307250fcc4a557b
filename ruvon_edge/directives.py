"""Control-flow directives a step may raise.

They derive from ``BaseException`` so that ``except Exception`` in user code
cannot swallow them by accident, the same way ``KeyboardInterrupt`` escapes.
"""

from __future__ import annotations

from typing import Any


class WorkflowDirective(BaseException):
    """Base of the directives; the runner catches them, user code should not.

    ``state`` is set by the engine to the state as the step left it when it raised.
    """

    state: Any = None


class WorkflowJumpDirective(WorkflowDirective):
    """Continue at step ``target_step_name`` instead of the next one; ``result`` merges first.

    State the step changed in place before raising is kept, as in the reference.
    """

    def __init__(self, target_step_name: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(target_step_name)
        self.target_step_name = target_step_name
        self.result = result or {}

    @property
    def target(self) -> str:
        """The step to continue at."""
        return self.target_step_name


class WorkflowPauseDirective(WorkflowDirective):
    """Stop here and wait for ``engine.resume`` (status WAITING_HUMAN); ``result`` merges first.

    The reference's form is ``WorkflowPauseDirective(result=None, waiting_for=None)``;
    a string as the first argument is the reason (ours). Resuming a step that
    paused this way completes it and runs the next step with the input.
    """

    def __init__(
        self,
        result: dict[str, Any] | str | None = None,
        waiting_for: str | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        if isinstance(result, str):
            reason, result = reason or result, None
        self.reason = reason or waiting_for or "paused"
        super().__init__(self.reason)
        self.result = result or {}
        self.waiting_for = waiting_for


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

"""What the reference SDK's step code imports from ``ruvon.models``, under ``ruvon_edge.models``.

Step modules written for the reference run with only the import renamed
(``from ruvon.models import StepContext, WorkflowJumpDirective`` becomes
``from ruvon_edge.models import ...``). The reference's two exception types
keep their constructor forms; raised from a step they fail it like any
exception (compensating first in saga mode).
"""

from __future__ import annotations

from ruvon_edge.definition.models import (
    MergeConflict,
    MergeStrategy,
    StepDefinition,
    StepType,
    WorkflowDefinition,
)
from ruvon_edge.directives import (
    StartSubWorkflowDirective,
    WorkflowDirective,
    WorkflowJumpDirective,
    WorkflowPauseDirective,
)
from ruvon_edge.engine.context import StepContext
from ruvon_edge.status import WorkflowStatus

MergeConflictBehavior = MergeConflict
"""The reference's name for ``MergeConflict``."""


class SagaWorkflowException(Exception):
    """A saga step failed; ``SagaWorkflowException(message_or_step, original_exception=None)``."""

    def __init__(self, message: str, original_exception: BaseException | None = None) -> None:
        self.message = message
        self.step_name = message
        self.original_exception = original_exception
        super().__init__(f"{message}: {original_exception}" if original_exception else message)


class WorkflowFailedException(Exception):
    """A workflow failed at a step (the reference's form: id, step name, original exception)."""

    def __init__(
        self, workflow_id: str, step_name: str, original_exception: BaseException | None = None
    ) -> None:
        self.workflow_id = workflow_id
        self.step_name = step_name
        self.original_exception = original_exception
        super().__init__(
            f"Workflow {workflow_id} failed at step {step_name!r}: {original_exception}"
        )


__all__ = [
    "MergeConflict",
    "MergeConflictBehavior",
    "MergeStrategy",
    "SagaWorkflowException",
    "StartSubWorkflowDirective",
    "StepContext",
    "StepDefinition",
    "StepType",
    "WorkflowDefinition",
    "WorkflowDirective",
    "WorkflowFailedException",
    "WorkflowJumpDirective",
    "WorkflowPauseDirective",
    "WorkflowStatus",
]

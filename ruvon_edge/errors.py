"""The exception tree of Ruvon Edge.

::

    RuvonError
    ├── DefinitionError            a workflow definition is invalid (carries ``path``)
    │   └── ExpressionError        a condition is not in the safe expression language
    ├── TemplateError              a template failed to render (sandbox, undefined, size)
    ├── WorkflowError              something went wrong with one workflow instance
    │   ├── InvalidTransitionError the workflow's status does not allow the request
    │   ├── InvalidInputError      human input failed its ``input_model``
    │   └── StepFailedError        a step raised (after its retries)
    └── (persistence errors live in ``ruvon_edge.providers.persistence``
         and derive from ``RuntimeError``, as the provider contract requires)

Every error carries enough context to name the problem in one line: the
definition path, the workflow id and the step.
"""

from __future__ import annotations


class RuvonError(Exception):
    """Base of every error raised on purpose by Ruvon Edge."""


class DefinitionError(RuvonError, ValueError):
    """A workflow definition is invalid; ``path`` says where (``steps[2].routes[0]``)."""

    def __init__(self, message: str, path: str = "", source: str | None = None) -> None:
        self.path = path
        self.source = source
        self.reason = message
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{path}: {message}" if path else f"{where}{message}")


class ExpressionError(DefinitionError):
    """An expression uses something outside the safe language, or failed to evaluate."""


class TemplateError(RuvonError, ValueError):
    """A template could not be rendered safely."""


class WorkflowError(RuvonError):
    """A problem with one workflow instance."""

    def __init__(self, message: str, workflow_id: object = None, step: str | None = None) -> None:
        self.workflow_id = workflow_id
        self.step = step
        self.reason = message
        parts = []
        if workflow_id is not None:
            parts.append(f"workflow {workflow_id}")
        if step:
            parts.append(f"step {step!r}")
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class InvalidTransitionError(WorkflowError):
    """The workflow's current status does not allow what was asked."""


class InvalidInputError(WorkflowError, ValueError):
    """Human input did not validate against the step's ``input_model``; nothing changed."""


class UnstorableValueError(InvalidInputError):
    """Input holds a value the store cannot keep exactly (lone surrogate, NaN/Infinity, too deep); nothing changed."""


class StepFailedError(WorkflowError):
    """A step function raised after all its attempts."""

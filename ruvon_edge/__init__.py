"""Ruvon Edge: durable workflows on a device, committed step by step to SQLite.

Importing this package is cheap: names are loaded on first use, so
``import ruvon_edge`` pulls in no engine, no HTTP client and no server library.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# A library stays silent until the application configures logging (no "last resort" stderr lines).
logging.getLogger(__name__).addHandler(logging.NullHandler())

_EXPORTS: dict[str, str] = {
    "WorkflowEngine": "ruvon_edge.compose",
    "Workflow": "ruvon_edge.engine.workflow",
    "StepContext": "ruvon_edge.engine.context",
    "WorkflowRegistry": "ruvon_edge.definition.registry",
    "WorkflowDefinition": "ruvon_edge.definition.models",
    "StepDefinition": "ruvon_edge.definition.models",
    "WorkflowStatus": "ruvon_edge.status",
    "WorkflowJumpDirective": "ruvon_edge.directives",
    "WorkflowPauseDirective": "ruvon_edge.directives",
    "StartSubWorkflowDirective": "ruvon_edge.directives",
    "RuvonError": "ruvon_edge.errors",
    "DefinitionError": "ruvon_edge.errors",
    "ExpressionError": "ruvon_edge.errors",
    "TemplateError": "ruvon_edge.errors",
    "WorkflowError": "ruvon_edge.errors",
    "InvalidTransitionError": "ruvon_edge.errors",
    "InvalidInputError": "ruvon_edge.errors",
    "StepFailedError": "ruvon_edge.errors",
    "PersistenceError": "ruvon_edge.providers.persistence",
    "WorkflowNotFoundError": "ruvon_edge.providers.persistence",
}

__all__ = [
    "DefinitionError",
    "ExpressionError",
    "InvalidInputError",
    "InvalidTransitionError",
    "PersistenceError",
    "RuvonError",
    "StartSubWorkflowDirective",
    "StepContext",
    "StepDefinition",
    "StepFailedError",
    "TemplateError",
    "Workflow",
    "WorkflowDefinition",
    "WorkflowEngine",
    "WorkflowError",
    "WorkflowJumpDirective",
    "WorkflowNotFoundError",
    "WorkflowPauseDirective",
    "WorkflowRegistry",
    "WorkflowStatus",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover
    from ruvon_edge.compose import WorkflowEngine
    from ruvon_edge.definition.models import StepDefinition, WorkflowDefinition
    from ruvon_edge.definition.registry import WorkflowRegistry
    from ruvon_edge.directives import (
        StartSubWorkflowDirective,
        WorkflowJumpDirective,
        WorkflowPauseDirective,
    )
    from ruvon_edge.engine.context import StepContext
    from ruvon_edge.engine.workflow import Workflow
    from ruvon_edge.errors import (
        DefinitionError,
        ExpressionError,
        InvalidInputError,
        InvalidTransitionError,
        RuvonError,
        StepFailedError,
        TemplateError,
        WorkflowError,
    )
    from ruvon_edge.providers.persistence import PersistenceError, WorkflowNotFoundError
    from ruvon_edge.status import WorkflowStatus


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ruvon_edge' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

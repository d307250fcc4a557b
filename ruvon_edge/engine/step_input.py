"""Which step a waiting workflow's input is for, and that input as the step's ``input_model``.

A ``HUMAN_IN_LOOP`` step's input is for that step. A step that paused with
``WorkflowPauseDirective`` is done when input arrives: the input is for the
next step, as in the reference SDK, and is validated against that step's model.
"""

from __future__ import annotations

from typing import Any

from ruvon_edge.definition.models import StepDefinition, WorkflowDefinition
from ruvon_edge.definition.registry import WorkflowRegistry


def input_step(definition: WorkflowDefinition, row: dict[str, Any]) -> StepDefinition:
    """The step that receives a waiting workflow's input: the next one after a directive's pause."""
    step = definition.step(row["current_step"])
    if row["context"].get("steps", {}).get(step.name, {}).get("paused"):
        index = definition.index_of(step.name) + 1
        if index < len(definition.steps):
            return definition.steps[index]
    return step


def validated_input(
    registry: WorkflowRegistry, step: StepDefinition, user_input: dict[str, Any] | None
) -> Any:
    """``context.validated_input``: the (already checked) input as the step's model, else a dict."""
    if user_input is None:
        return None
    model = registry.input_model(step)
    return model.model_validate(user_input) if model is not None else dict(user_input)

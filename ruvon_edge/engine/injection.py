"""``dynamic_injection``: steps a rule inserts into ONE instance after its step completed.

Rules are checked in order against the state the step left: the reference's
``condition_key`` (a dotted state path) with ``value_match`` (equal) or
``value_is_not`` (not one of), or ``condition`` in the safe expression
language. Every matching rule's ``steps_to_insert`` go right after the
current step (``INSERT_AFTER_CURRENT``), in rule order. The new definition
becomes that instance's snapshot: the insertion is recorded in the row's
context (``injected_steps``), committed with the step, and replayed on the
stored snapshot by any process that loads the row (``replay``), so a crash
resumes the injected steps and other instances never see them. A step whose
name the instance already has is not inserted again (a revisited step
injects once).
"""

from __future__ import annotations

from typing import Any

from ruvon_edge.definition.loader import load_steps
from ruvon_edge.definition.models import InjectionRule, StepDefinition, WorkflowDefinition
from ruvon_edge.engine import audit
from ruvon_edge.providers.expression_evaluator import ExpressionEvaluator

_MISSING = object()


def inject(
    definition: WorkflowDefinition,
    step: StepDefinition,
    state: dict[str, Any],
    evaluator: ExpressionEvaluator,
) -> tuple[WorkflowDefinition, list[str]]:
    """The definition with the matching rules' steps after ``step``, and the names inserted."""
    if step.dynamic_injection is None:
        return definition, []
    known = {s.name for s in definition.steps}
    new: list[StepDefinition] = []
    for rule in step.dynamic_injection.rules:
        if _matches(rule, state, evaluator):
            for injected in rule.steps_to_insert:
                if injected.name not in known:
                    known.add(injected.name)
                    new.append(injected)
    if not new:
        return definition, []
    return _insert(definition, step.name, new), [s.name for s in new]


def note(
    row: dict[str, Any],
    step: StepDefinition,
    definition: WorkflowDefinition,
    names: list[str],
    digest: str,
) -> dict[str, Any]:
    """Record one insertion in the row's context (committed with the step); return its audit row."""
    steps = [
        definition.step(n).model_dump(mode="json", by_alias=True, exclude_defaults=True)
        for n in names
    ]
    row["context"]["definition_hash"] = digest
    row["context"].setdefault("injected_steps", []).append({"after": step.name, "steps": steps})
    status = row["status"]
    return audit.event(audit.STEPS_INJECTED, step.name, status, status, steps=names)


def replay(definition: WorkflowDefinition, records: list[dict[str, Any]]) -> WorkflowDefinition:
    """The stored snapshot with the recorded insertions applied again, in order."""
    for entry in records:
        definition = _insert(
            definition, entry["after"], load_steps(entry["steps"], "injected_steps")
        )
    return definition


def _insert(
    definition: WorkflowDefinition, after: str, new: list[StepDefinition]
) -> WorkflowDefinition:
    at = definition.index_of(after) + 1
    steps = [*definition.steps[:at], *new, *definition.steps[at:]]
    return definition.model_copy(update={"steps": steps})


def _matches(rule: InjectionRule, state: dict[str, Any], evaluator: ExpressionEvaluator) -> bool:
    if rule.condition is not None:
        return bool(evaluator.evaluate(rule.condition, {"state": state}))
    value = _read(state, rule.condition_key or "")
    if rule.value_is_not is not None:
        return value is not _MISSING and value not in rule.value_is_not
    return value is not _MISSING and value == rule.value_match


def _read(state: dict[str, Any], path: str) -> Any:
    value: Any = state
    for part in path.removeprefix("state.").split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value

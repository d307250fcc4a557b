"""YAML text, file or dict -> a checked ``WorkflowDefinition``, or one-line DefinitionError.

Three layers, each reporting the path of the problem (``steps[2].routes[0]``):
YAML syntax (line/column), shape and types (pydantic), and cross checks the
models cannot do alone: unique step names, route targets that exist, the
fields a step type needs, and conditions inside the safe expression language.
Callables are not resolved here; that is the registry's job.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ruvon_edge.definition.models import StepDefinition, StepType, WorkflowDefinition
from ruvon_edge.errors import DefinitionError, ExpressionError
from ruvon_edge.expressions import compile_expression
from ruvon_edge.schedule import CronError
from ruvon_edge.schedule import parse as parse_cron

MAX_YAML_BYTES = 1_000_000
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64

_NEEDS_FUNCTION = (StepType.STANDARD, StepType.DECISION, StepType.ASYNC)
_NEEDS_WORKFLOW_TYPE = (StepType.SUB_WORKFLOW, StepType.FIRE_AND_FORGET)


def load_file(path: str | Path) -> WorkflowDefinition:
    """Read and check the definition in a YAML file; errors carry the file name as ``source``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(f"cannot read file: {exc}", source=str(path)) from None
    return load_yaml(text, source=str(path))


def load_yaml(text: str, source: str | None = None) -> WorkflowDefinition:
    """Parse YAML text with ``yaml.safe_load`` and check the definition it holds."""
    if len(text) > MAX_YAML_BYTES:
        raise DefinitionError(f"definition larger than {MAX_YAML_BYTES} characters", source=source)
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise DefinitionError(f"invalid YAML{where}: {problem}", source=source) from None
    except yaml.YAMLError as exc:
        raise DefinitionError(f"invalid YAML: {_one_line(str(exc))}", source=source) from None
    return load_dict(data, source=source)


def load_dict(data: Any, source: str | None = None) -> WorkflowDefinition:
    """Validate a plain mapping (parsed YAML or a stored snapshot) into a checked definition."""
    if not isinstance(data, Mapping):
        kind = "nothing" if data is None else f"a {type(data).__name__}"
        raise DefinitionError(f"a workflow definition must be a mapping, got {kind}", source=source)
    _check_expanded_size(data, source)
    try:
        definition = WorkflowDefinition.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc, source) from None
    check_definition(definition, source)
    return definition


def check_definition(definition: WorkflowDefinition, source: str | None = None) -> None:
    """Run the cross checks on an already built definition; DefinitionError on the first problem."""
    if definition.schedule is not None:
        try:
            parse_cron(definition.schedule)
        except CronError as exc:
            raise DefinitionError(str(exc), path="schedule", source=source) from None
    _check_steps(definition.steps, "steps", source)


def format_loc(loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic location tuple into ``steps[2].routes[0].next_step``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _from_validation(exc: ValidationError, source: str | None) -> DefinitionError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return DefinitionError(_one_line(message), path=format_loc(tuple(first["loc"])), source=source)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _check_expanded_size(data: Any, source: str | None) -> None:
    """Refuse YAML alias bombs: count nodes as pydantic would see them, with a budget."""
    budget = [MAX_YAML_NODES]

    def walk(value: Any, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise DefinitionError(
                f"definition expands to more than {MAX_YAML_NODES} values", source=source
            )
        if depth > MAX_YAML_DEPTH:
            raise DefinitionError(f"definition nests deeper than {MAX_YAML_DEPTH}", source=source)
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(key, depth + 1)
                walk(item, depth + 1)
        elif isinstance(value, list | tuple | set):
            for item in value:
                walk(item, depth + 1)

    walk(data, 0)


def _check_steps(steps: list[StepDefinition], where: str, source: str | None) -> None:
    first_seen: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.name in first_seen:
            raise DefinitionError(
                f"duplicate step name {step.name!r} (first at {where}[{first_seen[step.name]}])",
                path=f"{where}[{i}].name",
                source=source,
            )
        first_seen[step.name] = i
    for i, step in enumerate(steps):
        path = f"{where}[{i}]"
        _check_required(step, path, source)
        _check_routes(step, path, first_seen, source)
        for field, text in _step_expressions(step):
            _check_expression(text, f"{path}.{field}", source)
        if step.loop_body:
            _check_steps(step.loop_body, f"{path}.loop_body", source)


def _check_required(step: StepDefinition, path: str, source: str | None) -> None:
    def need(field: str, why: str) -> None:
        raise DefinitionError(f"required for {why}", path=f"{path}.{field}", source=source)

    kind = step.type
    if kind in _NEEDS_FUNCTION and not step.function:
        need("function", f"a {kind} step")
    elif kind in _NEEDS_WORKFLOW_TYPE and not step.workflow_type:
        need("workflow_type", f"a {kind} step")
    elif kind == StepType.HTTP and step.http_config is None:
        need("http_config", "an HTTP step")
    elif kind == StepType.PARALLEL:
        _check_parallel(step, path, source)
    elif kind == StepType.LOOP:
        if step.mode is None:
            need("mode", "a LOOP step (ITERATE or WHILE)")
        if not step.loop_body and not step.function:
            raise DefinitionError(
                "a LOOP step needs 'loop_body' or 'function'", path=path, source=source
            )
        if step.mode == "ITERATE" and not step.iterate_over:
            need("iterate_over", "an ITERATE loop")
        if step.mode == "WHILE" and not step.while_condition:
            need("while_condition", "a WHILE loop")


def _check_parallel(step: StepDefinition, path: str, source: str | None) -> None:
    if not step.tasks and not (step.iterate_over and step.task_function):
        raise DefinitionError(
            "a PARALLEL step needs 'tasks' or 'iterate_over' with 'task_function'",
            path=path,
            source=source,
        )
    seen: set[str] = set()
    for j, task in enumerate(step.tasks):
        if task.name in seen:
            raise DefinitionError(
                f"duplicate task name {task.name!r}", path=f"{path}.tasks[{j}].name", source=source
            )
        seen.add(task.name)


def _check_routes(
    step: StepDefinition, path: str, names: Mapping[str, int], source: str | None
) -> None:
    defaults = 0
    for j, route in enumerate(step.routes):
        route_path = f"{path}.routes[{j}]"
        if route.destination not in names:
            raise DefinitionError(
                f"unknown step {route.destination!r}", path=route_path, source=source
            )
        if route.default is not None:
            defaults += 1
            if defaults > 1 or j != len(step.routes) - 1:
                raise DefinitionError(
                    "the default route must be the last and only one",
                    path=route_path,
                    source=source,
                )


def _step_expressions(step: StepDefinition) -> Iterator[tuple[str, str]]:
    for j, route in enumerate(step.routes):
        if route.condition is not None:
            yield f"routes[{j}].condition", route.condition
    if step.while_condition is not None:
        yield "while_condition", step.while_condition
    if step.iterate_over is not None:
        yield "iterate_over", step.iterate_over


def _check_expression(text: str, path: str, source: str | None) -> None:
    try:
        compile_expression(text)
    except ExpressionError as exc:
        raise ExpressionError(exc.reason, path=path, source=source) from None

"""YAML text, file or dict -> a checked ``WorkflowDefinition``, or one-line DefinitionError.

Layers, each reporting the path of the problem (``steps[2].routes[0]``):
YAML syntax (line/column; a duplicate key is an error, not last-wins), the
reference SDK's spellings mapped onto ours (``compat``), shape and types
(pydantic), and cross checks the models cannot do alone: unique step names,
route targets that exist, the fields a step type needs, and conditions inside
the safe expression language. Every problem found in a layer is listed in the
one-line error, with a suggestion for a misspelt key. Callables are not
resolved here; that is the registry's job.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ruvon_edge.definition import compat
from ruvon_edge.definition.models import (
    AuditConfig,
    DynamicInjection,
    HttpConfig,
    InjectionRule,
    ParallelTask,
    RetryPolicy,
    Route,
    StepDefinition,
    StepType,
    WorkflowDefinition,
)
from ruvon_edge.errors import DefinitionError, ExpressionError
from ruvon_edge.expressions import compile_expression
from ruvon_edge.schedule import CronError
from ruvon_edge.schedule import parse as parse_cron

MAX_YAML_BYTES = 1_000_000
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64

_NEEDS_FUNCTION = (StepType.STANDARD, StepType.ASYNC)
_NEEDS_WORKFLOW_TYPE = (StepType.SUB_WORKFLOW, StepType.FIRE_AND_FORGET, StepType.CRON_SCHEDULE)
_MODELS = (
    WorkflowDefinition, StepDefinition, Route, ParallelTask, HttpConfig, RetryPolicy,
    AuditConfig, InjectionRule, DynamicInjection,
)  # fmt: skip
_REFERENCE_KEYS = (
    "initial_state_model", "saga_enabled", "function_path", "merge_conflict_behavior",
    "target_workflow_type", "initial_data_template", "query_params", "retry_policy", "delay_seconds",
)  # fmt: skip
Problems = list[tuple[str, str]]


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, list | dict):
                continue  # unhashable: the base class reports it
            if key in seen:
                first = seen[key]
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {first.line + 1})",
                    key_node.start_mark,
                )  # fmt: skip
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


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
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 -- a SafeLoader subclass
    except RecursionError:
        raise DefinitionError("invalid YAML: nested too deeply", source=source) from None
    except ValueError as exc:  # an integer beyond Python's digit limit
        reason = "a number has too many digits" if "digits" in str(exc) else _one_line(str(exc))
        raise DefinitionError(f"invalid YAML: {reason}", source=source) from None
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
    problems: Problems = []
    data = compat.normalise(data, problems)
    try:
        definition = WorkflowDefinition.model_validate(data)
    except ValidationError as exc:
        refused = tuple(
            p.removesuffix("type") for p, m in problems if m.endswith(compat.UNSUPPORTED)
        )
        shape = [
            (p, m) for p, m in _validation_problems(exc) if not p.startswith(refused or ("\0",))
        ]
        raise problems_error(problems + shape, source) from None
    _check_definition(definition, problems)
    if problems:
        raise problems_error(problems, source)
    return definition


def check_definition(definition: WorkflowDefinition, source: str | None = None) -> None:
    """Run the cross checks on an already built definition; DefinitionError listing every problem."""
    problems: Problems = []
    _check_definition(definition, problems)
    if problems:
        raise problems_error(problems, source)


def load_steps(raw: list[Any], where: str) -> list[StepDefinition]:
    """Validate steps given as plain dicts (injected ones), in the reference's spelling or ours."""
    problems: Problems = []
    steps = compat.normalise_steps(raw, where, problems)
    built: list[StepDefinition] = []
    for i, step in enumerate(steps):
        try:
            built.append(StepDefinition.model_validate(step))
        except ValidationError as exc:
            problems += [
                (f"{where}[{i}].{p}" if p else f"{where}[{i}]", m)
                for p, m in _validation_problems(exc)
            ]
    if not problems:
        _check_steps(built, where, problems)
    if problems:
        raise problems_error(problems, None)
    return built


def problems_error(problems: Problems, source: str | None) -> DefinitionError:
    """One DefinitionError naming every problem: ``path: what; path: what``."""
    (path, first), rest = problems[0], problems[1:]
    message = "; ".join([first, *(f"{p}: {m}" if p else m for p, m in rest)])
    error_type = (
        ExpressionError
        if len(problems) == 1 and path.endswith(_EXPRESSION_FIELDS)
        else DefinitionError
    )
    return error_type(_one_line(message), path=path, source=source)


def _check_definition(definition: WorkflowDefinition, problems: Problems) -> None:
    if definition.schedule is not None:
        try:
            parse_cron(definition.schedule)
        except CronError as exc:
            problems.append(("schedule", str(exc)))
    _check_steps(definition.steps, "steps", problems)


def format_loc(loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic location tuple into ``steps[2].routes[0].next_step``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _validation_problems(exc: ValidationError) -> Problems:
    problems: Problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key" + _suggestion(str(loc[-1]))
        problems.append((format_loc(loc), message))
    return problems


def _suggestion(key: str) -> str:
    known = {name for model in _MODELS for name in model.model_fields} | set(_REFERENCE_KEYS)
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


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


def _check_steps(steps: list[StepDefinition], where: str, problems: Problems) -> None:
    first_seen: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.name in first_seen:
            problems.append((
                f"{where}[{i}].name",
                f"duplicate step name {step.name!r} (first at {where}[{first_seen[step.name]}])",
            ))  # fmt: skip
        else:
            first_seen[step.name] = i
    for i, step in enumerate(steps):
        path = f"{where}[{i}]"
        _check_required(step, path, problems)
        _check_routes(step, path, first_seen, problems)
        for field, text in _step_expressions(step):
            _check_expression(text, f"{path}.{field}", problems)
        if step.loop_body:
            _check_steps(step.loop_body, f"{path}.loop_body", problems)
        if step.dynamic_injection:
            for j, rule in enumerate(step.dynamic_injection.rules):
                _check_steps(
                    rule.steps_to_insert,
                    f"{path}.dynamic_injection.rules[{j}].steps_to_insert",
                    problems,
                )


def _check_required(step: StepDefinition, path: str, problems: Problems) -> None:
    def need(field: str, why: str) -> None:
        problems.append((f"{path}.{field}", f"required for {why}"))

    kind = step.type
    if kind in _NEEDS_FUNCTION and not step.function:
        need("function", f"a {kind} step")
    elif kind in _NEEDS_WORKFLOW_TYPE and not step.workflow_type:
        need("workflow_type", f"a {kind} step")
    elif kind == StepType.DECISION and not (step.function or step.routes):
        problems.append((path, "a DECISION step needs 'function' or 'routes'"))
    elif kind == StepType.HTTP and step.http_config is None:
        need("http_config", "an HTTP step")
    elif kind == StepType.AUDIT_EMIT and step.audit_config is None:
        need("audit_config", "an AUDIT_EMIT step")
    elif kind == StepType.PARALLEL:
        _check_parallel(step, path, problems)
    elif kind == StepType.LOOP:
        if step.mode is None:
            need("mode", "a LOOP step (ITERATE or WHILE)")
        if not step.loop_body and not step.function:
            problems.append((path, "a LOOP step needs 'loop_body' or 'function'"))
        if step.mode == "ITERATE" and not step.iterate_over:
            need("iterate_over", "an ITERATE loop")
        if step.mode == "WHILE" and not step.while_condition:
            need("while_condition", "a WHILE loop")
    if kind == StepType.CRON_SCHEDULE:
        if not step.cron_expression:
            need("cron_expression", "a CRON_SCHEDULE step")
        else:
            try:
                parse_cron(step.cron_expression)
            except CronError as exc:
                problems.append((f"{path}.cron_expression", str(exc)))


def _check_parallel(step: StepDefinition, path: str, problems: Problems) -> None:
    if not step.tasks and not (step.iterate_over and step.task_function):
        problems.append(
            (path, "a PARALLEL step needs 'tasks' or 'iterate_over' with 'task_function'")
        )
    seen: set[str] = set()
    for j, task in enumerate(step.tasks):
        if task.name in seen:
            problems.append((f"{path}.tasks[{j}].name", f"duplicate task name {task.name!r}"))
        seen.add(task.name)


def _check_routes(
    step: StepDefinition, path: str, names: Mapping[str, int], problems: Problems
) -> None:
    defaults = 0
    for j, route in enumerate(step.routes):
        route_path = f"{path}.routes[{j}]"
        if route.destination not in names:
            problems.append((route_path, f"unknown step {route.destination!r}"))
        if route.default is not None:
            defaults += 1
            if defaults > 1 or j != len(step.routes) - 1:
                problems.append((route_path, "the default route must be the last and only one"))


def _step_expressions(step: StepDefinition) -> Iterator[tuple[str, str]]:
    for j, route in enumerate(step.routes):
        if route.condition is not None:
            yield f"routes[{j}].condition", route.condition
    if step.while_condition is not None:
        yield "while_condition", step.while_condition
    if step.iterate_over is not None:
        yield "iterate_over", step.iterate_over
    for j, rule in enumerate(step.dynamic_injection.rules if step.dynamic_injection else ()):
        if rule.condition is not None:
            yield f"dynamic_injection.rules[{j}].condition", rule.condition


_EXPRESSION_FIELDS = ("condition", "while_condition", "iterate_over")


def _check_expression(text: str, path: str, problems: Problems) -> None:
    try:
        compile_expression(text)
    except ExpressionError as exc:
        problems.append((path, exc.reason))

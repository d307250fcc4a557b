"""The registry: checked definitions by workflow type, and the only door to user code.

Every dotted path in a definition (step functions, compensations, models) is
resolved here, and only inside ``allowed_modules``: a module is allowed when it
equals an entry or is a submodule of one (``app`` allows ``app.steps``, not
``application``). Nothing outside is even imported. Registration validates a
whole file or directory before storing anything, so a bad definition never
leaves a half-registered set behind.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, create_model

from ruvon_edge.definition.loader import check_definition, load_dict, load_file, load_yaml
from ruvon_edge.definition.models import StepDefinition, WorkflowDefinition
from ruvon_edge.definition.state import DictState
from ruvon_edge.errors import DefinitionError

_FUNCTION_FIELDS = ("function", "compensate_function", "task_function", "merge_function")


class WorkflowRegistry:
    """Holds workflow definitions by type and resolves their callables safely."""

    def __init__(self, allowed_modules: Iterable[str] = ()) -> None:
        if isinstance(allowed_modules, str):
            allowed_modules = [allowed_modules]
        self.allowed_modules: tuple[str, ...] = tuple(
            m.strip() for m in allowed_modules if m.strip()
        )
        self._definitions: dict[str, WorkflowDefinition] = {}
        self._resolved: dict[str, Any] = {}
        self._permissive_models: dict[str, type[BaseModel]] = {}

    # -- registration -------------------------------------------------------

    def register_file(self, path: str | Path) -> WorkflowDefinition:
        """Load, check and register the definition in a ``.yaml``/``.yml`` file."""
        definition = load_file(path)
        self._check_callables(definition, source=str(path))
        return self._store([definition])[0]

    def register_directory(self, path: str | Path) -> list[WorkflowDefinition]:
        """Register every ``.yaml``/``.yml`` file in ``path``: all of them, or none."""
        directory = Path(path)
        if not directory.is_dir():
            raise DefinitionError("not a directory", source=str(directory))
        files = sorted(
            p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
        )
        definitions: list[WorkflowDefinition] = []
        origin: dict[str, Path] = {}
        for file in files:
            definition = load_file(file)
            self._check_callables(definition, source=str(file))
            if definition.workflow_type in origin:
                raise DefinitionError(
                    f"duplicate workflow_type {definition.workflow_type!r} "
                    f"(also in {origin[definition.workflow_type].name})",
                    path="workflow_type",
                    source=str(file),
                )
            origin[definition.workflow_type] = file
            definitions.append(definition)
        return self._store(definitions)

    def register_yaml(self, text: str, source: str | None = None) -> WorkflowDefinition:
        """Load, check and register a definition from YAML text."""
        definition = load_yaml(text, source=source)
        self._check_callables(definition, source=source)
        return self._store([definition])[0]

    def register(self, definition: WorkflowDefinition | dict) -> WorkflowDefinition:
        """Check and register a definition given as a model or a plain dict."""
        if isinstance(definition, WorkflowDefinition):
            check_definition(definition)
        else:
            definition = load_dict(definition)
        self._check_callables(definition, source=None)
        return self._store([definition])[0]

    def load_snapshot(self, snapshot: dict) -> WorkflowDefinition:
        """Re-validate a stored definition (``model_dump(mode='json', by_alias=True)``) without registering it."""
        return load_dict(snapshot, source="snapshot")

    def _store(self, definitions: list[WorkflowDefinition]) -> list[WorkflowDefinition]:
        for definition in definitions:
            self._definitions[definition.workflow_type] = definition
        return definitions

    # -- lookup -------------------------------------------------------------

    def get(self, workflow_type: str) -> WorkflowDefinition:
        """Return the definition of ``workflow_type``; DefinitionError naming the known types."""
        try:
            return self._definitions[workflow_type]
        except KeyError:
            known = ", ".join(self.types()) or "none"
            raise DefinitionError(
                f"unknown workflow type {workflow_type!r} (known: {known})"
            ) from None

    def types(self) -> list[str]:
        """Return the registered workflow types, sorted."""
        return sorted(self._definitions)

    def __contains__(self, workflow_type: object) -> bool:
        return workflow_type in self._definitions

    # -- resolving user code ------------------------------------------------

    def is_allowed(self, module: str) -> bool:
        """Say whether ``module`` is an allowed module or a submodule of one."""
        return any(module == m or module.startswith(m + ".") for m in self.allowed_modules)

    def resolve(self, dotted_path: str) -> Any:
        """Import ``module.attr`` from inside ``allowed_modules``; DefinitionError otherwise (cached)."""
        if dotted_path in self._resolved:
            return self._resolved[dotted_path]
        value = self._import(dotted_path)
        self._resolved[dotted_path] = value
        return value

    def state_model(self, definition: WorkflowDefinition) -> type[BaseModel]:
        """Return the state model: ``initial_state_model_path``, else a permissive ``DictState`` per type."""
        if definition.initial_state_model_path:
            return self._model(definition.initial_state_model_path, "initial_state_model_path")
        model = self._permissive_models.get(definition.workflow_type)
        if model is None:
            model = create_model(f"{definition.workflow_type}State", __base__=DictState)
            self._permissive_models[definition.workflow_type] = model
        return model

    def input_model(self, step: StepDefinition) -> type[BaseModel] | None:
        """Return the step's human-input model, or None when it declares none."""
        return self._model(step.input_model, "input_model") if step.input_model else None

    def _model(self, dotted_path: str, path: str) -> type[BaseModel]:
        value = self.resolve(dotted_path)
        if not (isinstance(value, type) and issubclass(value, BaseModel)):
            raise DefinitionError(f"{dotted_path!r} is not a pydantic model", path=path)
        return value

    def _import(self, dotted_path: str) -> Any:
        parts = dotted_path.split(".") if isinstance(dotted_path, str) else []
        if len(parts) < 2 or not all(p.isidentifier() for p in parts):
            raise DefinitionError(
                f"{dotted_path!r} is not a dotted path like 'package.module.name'"
            )
        if any(p.startswith("__") for p in parts):
            raise DefinitionError(f"{dotted_path!r} names a dunder attribute")
        if not self.is_allowed(dotted_path):
            raise DefinitionError(self._outside(dotted_path))
        module, rest = self._import_module(dotted_path, parts)
        value: Any = module
        for depth, name in enumerate(rest):
            try:
                value = getattr(value, name)
            except AttributeError:
                owner = ".".join(parts[: len(parts) - len(rest) + depth])
                raise DefinitionError(f"{owner!r} has no attribute {name!r}") from None
            if isinstance(value, ModuleType) and not self.is_allowed(value.__name__):
                raise DefinitionError(self._outside(value.__name__))
        origin = getattr(value, "__module__", None)
        if isinstance(value, type) or callable(value):
            if isinstance(origin, str) and not self.is_allowed(origin):
                # `from os import system` inside an allowed module must not open a door
                name = getattr(value, "__qualname__", parts[-1])
                raise DefinitionError(
                    f"{dotted_path!r} is {origin}.{name}, outside allowed_modules {list(self.allowed_modules)}"
                )
        return value

    def _import_module(self, dotted_path: str, parts: list[str]) -> tuple[ModuleType, list[str]]:
        """Import the longest allowed module prefix of ``parts``; return it and the attribute names."""
        last_error: BaseException | None = None
        for cut in range(len(parts) - 1, 0, -1):
            name = ".".join(parts[:cut])
            if not self.is_allowed(name):
                break
            try:
                return importlib.import_module(name), parts[cut:]
            except ModuleNotFoundError as exc:
                if (
                    exc.name is not None
                    and name != exc.name
                    and not name.startswith(exc.name + ".")
                ):
                    last_error = exc  # the module exists but one of its own imports is missing
                    break
                last_error = exc
            except Exception as exc:  # a user module failing at import time
                first_line = (str(exc).splitlines() or [""])[0]
                raise DefinitionError(
                    f"importing {name!r} for {dotted_path!r} failed: {type(exc).__name__}: {first_line}"
                ) from None
        reason = f": {last_error}" if last_error else ""
        raise DefinitionError(f"cannot import {dotted_path!r}{reason}")

    def _outside(self, dotted_path: str) -> str:
        return f"{dotted_path!r} is outside allowed_modules {list(self.allowed_modules)}"

    def _check_callables(self, definition: WorkflowDefinition, source: str | None) -> None:
        """Resolve every dotted path of ``definition`` now, so a bad one fails at load."""
        for path, dotted, kind in _dotted_paths(definition):
            try:
                value = self.resolve(dotted)
                if kind == "model" and not (
                    isinstance(value, type) and issubclass(value, BaseModel)
                ):
                    raise DefinitionError(f"{dotted!r} is not a pydantic BaseModel subclass")
                if kind == "function" and (isinstance(value, type) or not callable(value)):
                    raise DefinitionError(f"{dotted!r} is not a function")
            except DefinitionError as exc:
                raise DefinitionError(exc.reason, path=path, source=source) from None


def _dotted_paths(definition: WorkflowDefinition) -> Iterator[tuple[str, str, str]]:
    """Yield ``(definition path, dotted path, 'function' | 'model')`` for every reference."""
    if definition.initial_state_model_path:
        yield "initial_state_model_path", definition.initial_state_model_path, "model"
    yield from _step_paths(definition.steps, "steps")


def _step_paths(steps: list[StepDefinition], where: str) -> Iterator[tuple[str, str, str]]:
    for i, step in enumerate(steps):
        path = f"{where}[{i}]"
        for field in _FUNCTION_FIELDS:
            dotted = getattr(step, field)
            if dotted:
                yield f"{path}.{field}", dotted, "function"
        if step.input_model:
            yield f"{path}.input_model", step.input_model, "model"
        for j, task in enumerate(step.tasks):
            yield f"{path}.tasks[{j}].function", task.function, "function"
        yield from _step_paths(step.loop_body, f"{path}.loop_body")
        for j, rule in enumerate(step.dynamic_injection.rules if step.dynamic_injection else ()):
            yield from _step_paths(
                rule.steps_to_insert, f"{path}.dynamic_injection.rules[{j}].steps_to_insert"
            )

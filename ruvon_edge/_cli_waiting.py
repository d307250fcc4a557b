"""What a workflow waiting for a person wants: its step's input fields and the command to resume it.

A ``run`` that ends WAITING_HUMAN should leave the operator knowing what to
type next; ``resume`` should say when a field it was given will be dropped
(a typo, usually) because the input model ignores fields it does not declare.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from ruvon_edge._cli_config import DEFAULT_DB, Settings

_PLACEHOLDER = {bool: False, int: 0, float: 0.0, str: ""}
_UNKNOWN_FIELDS = {"forbid": "refused", "ignore": "ignored"}


def _input_model(engine: Any, row: dict[str, Any]) -> tuple[Any, Any]:
    step = engine.snapshots.definition_of(row).step(row["current_step"])
    return step, engine.registry.input_model(step)


def input_wanted(engine: Any, row: dict[str, Any], settings: Settings, prog: str) -> dict[str, Any]:
    """The waiting step's input model as fields, and a ``resume`` command to copy and fill in."""
    step, model = _input_model(engine, row)
    fields, example = {}, {}
    for name, field in (model.model_fields if model else {}).items():
        kind = field.annotation
        fields[name] = {
            "type": getattr(kind, "__name__", str(kind)),
            "required": field.is_required(),
        }
        if field.is_required():
            example[name] = _PLACEHOLDER.get(kind)
    command = [prog, "resume", row["id"], "--input", json.dumps(example)]
    if settings.db != DEFAULT_DB:
        command += ["--db", settings.db]
    for module in settings.allow_modules:
        command += ["--allow-module", module]
    for directory in settings.module_path:
        command += ["--module-path", directory]
    extra = (model.model_config.get("extra") or "ignore") if model else "allow"
    return {
        "step": step.name,
        "input_model": model.__name__ if model else None,
        "fields": fields,
        "unknown_fields": _UNKNOWN_FIELDS.get(extra, "passed on"),
        "resume": shlex.join(command),
    }


def describe_wanted(wanted: dict[str, Any]) -> str:
    """Two lines for humans: what the step wants, and the command to give it."""
    fields = ", ".join(
        f"{name}: {f['type']}{'' if f['required'] else ' (optional)'}"
        for name, f in wanted["fields"].items()
    )
    model = f" ({wanted['input_model']})" if wanted["input_model"] else ""
    return (
        f"waiting for input at step {wanted['step']!r}{model}: {fields or 'any JSON object'}\n"
        f"resume with: {wanted['resume']}"
    )


def ignored_fields(engine: Any, row: dict[str, Any], data: dict[str, Any]) -> str | None:
    """A warning naming the fields of ``data`` the waiting step's input model will silently drop."""
    _, model = _input_model(engine, row)
    if model is None or model.model_config.get("extra") not in (None, "ignore"):
        return None
    known = {f.alias or n for n, f in model.model_fields.items()} | set(model.model_fields)
    unknown = sorted(set(data) - known)
    if not unknown:
        return None
    return f"{model.__name__} has no field {', '.join(map(repr, unknown))}: ignored"

"""The reference SDK's spellings of a definition, rewritten into ours before validation.

A workflow written for the reference (ruvon-sdk / rufus-sdk) loads unchanged
but for module paths (contract §2a). This module maps its documented keys
onto the canonical model: ``initial_state_model``, ``saga_enabled``, step-level
HTTP keys (``output_key``, ``includes``), ``http_config.query_params`` /
``retry_policy`` / mapping ``body``, FIRE_AND_FORGET's ``target_workflow_type``
and ``initial_data_template``, ``function_path`` of PARALLEL tasks,
upper-case merge strategies and ``merge_conflict_behavior``, and the step
types COMPENSATABLE (STANDARD) and HUMAN_APPROVAL (HUMAN_IN_LOOP). It also
applies the reference's load-time substitutions: ``${VAR}`` /
``${VAR:-default}`` from the environment and ``{{parameters.x}}`` from the
top-level ``parameters``. WASM and AI_* steps are refused by name: they need
runtimes this edge engine does not ship.

The rewrite is idempotent, so a stored snapshot (already canonical) passes
through unchanged. Problems are collected, not raised, so the loader can
list every problem of a file at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

Problems = list[tuple[str, str]]

STEP_TYPE_ALIASES = {"COMPENSATABLE": "STANDARD", "HUMAN_APPROVAL": "HUMAN_IN_LOOP"}
UNSUPPORTED_STEP_TYPES = ("WASM", "AI_")
UNSUPPORTED = "is not supported by Ruvon Edge"

MERGE_CONFLICT_VALUES = {
    "prefer_new": "overwrite",
    "overwrite_existing": "overwrite",
    "prefer_existing": "keep",
    "prefer_old": "keep",
    "preserve_existing": "keep",
    "raise_error": "error",
}
"""The reference's ``merge_conflict_behavior`` values (any case) → our ``merge_conflict``."""

_ENV = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")
_PARAMETER = re.compile(r"\{\{\s*parameters\.(\w+)\s*\}\}")
_RENAMED_TOP = {"initial_state_model": "initial_state_model_path", "saga_enabled": "saga_mode"}
_RENAMED_STEP = {"target_workflow_type": "workflow_type", "initial_data_template": "initial_data"}
_STEP_LEVEL_HTTP = ("output_key", "includes")


def normalise(raw: Mapping[str, Any], problems: Problems) -> dict[str, Any]:
    """Return ``raw`` in canonical spelling; append ``(path, message)`` for what cannot be mapped."""
    data: dict[str, Any] = _substitute_env(dict(raw))
    parameters = data.get("parameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        problems.append(("parameters", "must be a mapping"))
    elif parameters:
        data = _substitute_parameters(data, parameters)
    _rename(data, _RENAMED_TOP, "", problems)
    if data.get("initial_state_model_path") in ("builtins.dict", "dict"):
        data["initial_state_model_path"] = None  # the reference's "no model": a plain dict state
    steps = data.get("steps")
    if isinstance(steps, list):
        data["steps"] = normalise_steps(steps, "steps", problems)
    return data


def normalise_steps(steps: list[Any], where: str, problems: Problems) -> list[Any]:
    """Canonical spelling of a list of steps (also used for injected steps)."""
    return [
        _step(step, f"{where}[{i}]", problems) if isinstance(step, Mapping) else step
        for i, step in enumerate(steps)
    ]


def _step(raw: Mapping[str, Any], path: str, problems: Problems) -> dict[str, Any]:
    step = dict(raw)
    kind = step.get("type")
    if isinstance(kind, str):
        kind = STEP_TYPE_ALIASES.get(kind.upper(), kind.upper())
        step["type"] = kind
        if kind.startswith(UNSUPPORTED_STEP_TYPES):
            problems.append((f"{path}.type", f"step type {kind} {UNSUPPORTED}"))
    _rename(step, _RENAMED_STEP, f"{path}.", problems)
    if isinstance(step.get("merge_strategy"), str):
        step["merge_strategy"] = step["merge_strategy"].lower()
    behaviour = step.pop("merge_conflict_behavior", None)
    if behaviour is not None:
        if "merge_conflict" in step:
            problems.append(
                (f"{path}.merge_conflict_behavior", "give merge_conflict or this, not both")
            )
        mapped = MERGE_CONFLICT_VALUES.get(str(behaviour).lower())
        if mapped is None:
            known = ", ".join(sorted(v.upper() for v in MERGE_CONFLICT_VALUES))
            problems.append(
                (f"{path}.merge_conflict_behavior", f"unknown value {behaviour!r} (known: {known})")
            )
        step["merge_conflict"] = mapped or behaviour
    elif isinstance(step.get("merge_conflict"), str):
        step["merge_conflict"] = step["merge_conflict"].lower()
    if isinstance(step.get("tasks"), list):
        step["tasks"] = [
            _task(t, f"{path}.tasks[{j}]", problems) for j, t in enumerate(step["tasks"])
        ]
    if isinstance(step.get("http_config"), Mapping):
        step["http_config"] = _http(step, path, problems)
    if isinstance(step.get("loop_body"), list):
        step["loop_body"] = normalise_steps(step["loop_body"], f"{path}.loop_body", problems)
    if isinstance(step.get("dynamic_injection"), Mapping):
        step["dynamic_injection"] = _injection(step, f"{path}.dynamic_injection", problems)
    return step


def _injection(step: dict[str, Any], path: str, problems: Problems) -> dict[str, Any]:
    """The short form ``{condition, steps, insert_after}`` as one rule; injected steps normalised."""
    block = dict(step["dynamic_injection"])
    if "rules" not in block and "steps" in block:
        after = block.pop("insert_after", step.get("name"))
        if after != step.get("name"):
            problems.append((f"{path}.insert_after", "injected steps go right after this step"))
        block = {
            "rules": [
                {
                    "condition": block.pop("condition", None),
                    "steps_to_insert": block.pop("steps"),
                    **block,
                }
            ]
        }
    rules = block.get("rules")
    if isinstance(rules, list):
        block["rules"] = [
            {
                **rule,
                "steps_to_insert": normalise_steps(
                    rule["steps_to_insert"], f"{path}.rules[{j}].steps_to_insert", problems
                ),
            }
            if isinstance(rule, Mapping) and isinstance(rule.get("steps_to_insert"), list)
            else rule
            for j, rule in enumerate(rules)
        ]
    return block


def _task(raw: Any, path: str, problems: Problems) -> Any:
    if not isinstance(raw, Mapping):
        return raw
    task = dict(raw)
    _rename(task, {"function_path": "function"}, f"{path}.", problems)
    return task


def _http(step: dict[str, Any], path: str, problems: Problems) -> dict[str, Any]:
    """Fold the step-level HTTP keys into ``http_config`` and map the reference's request keys."""
    config = dict(step["http_config"])
    for key in _STEP_LEVEL_HTTP:
        if key in step:
            if key in config:
                problems.append((f"{path}.{key}", f"given both here and in http_config.{key}"))
            config[key] = step.pop(key)
    where = f"{path}.http_config."
    _rename(config, {"query_params": "params", "retry_policy": "retry"}, where, problems)
    if isinstance(config.get("retry"), Mapping) and "delay_seconds" in config["retry"]:
        retry = dict(config["retry"])
        retry["backoff_seconds"] = retry.pop("delay_seconds")
        retry.setdefault("backoff_multiplier", 1.0)  # the reference waits the same delay each time
        config["retry"] = retry
    if isinstance(config.get("body"), Mapping | list):
        if "json" in config:
            problems.append((f"{where}body", "give body or json, not both"))
        config["json"] = config.pop("body")
    if isinstance(config.get("method"), str):
        config["method"] = config["method"].upper()
    return config


def _rename(
    data: dict[str, Any], names: Mapping[str, str], prefix: str, problems: Problems
) -> None:
    for old, new in names.items():
        if old in data:
            if new in data:
                problems.append((f"{prefix}{old}", f"give {old} or {new}, not both"))
                data.pop(old)
            else:
                data[new] = data.pop(old)


def _substitute_env(value: Any) -> Any:
    """``${VAR}`` and ``${VAR:-default}`` from the environment; an unset VAR without default stays as written."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        return _ENV.sub(
            lambda m: os.environ.get(
                m.group(1), m.group(2) if m.group(2) is not None else m.group(0)
            ),
            value,
        )
    if isinstance(value, dict):
        return {k: _substitute_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v) for v in value]
    return value


def _substitute_parameters(value: Any, parameters: Mapping[str, Any]) -> Any:
    """``{{parameters.x}}``: a string that is only the placeholder takes the parameter's value and type."""
    if isinstance(value, str):
        whole = _PARAMETER.fullmatch(value.strip())
        if whole and whole.group(1) in parameters:
            return parameters[whole.group(1)]
        return _PARAMETER.sub(
            lambda m: str(parameters[m.group(1)]) if m.group(1) in parameters else m.group(0), value
        )
    if isinstance(value, dict):
        return {
            k: v if k == "parameters" else _substitute_parameters(v, parameters)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute_parameters(v, parameters) for v in value]
    return value

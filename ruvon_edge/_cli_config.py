"""Resolve the ``ruvon-edge`` settings: flags > environment > ``--config`` TOML > defaults.

Each setting is taken whole from the highest layer that sets it (lists are not
merged across layers), so what a flag says is exactly what runs. Environment
lists: ``RUVON_DEFINITIONS`` and ``RUVON_MODULE_PATH`` are split on
``os.pathsep`` (``:`` on POSIX, like ``PYTHONPATH``); ``RUVON_ALLOW_MODULES`` on
commas or ``os.pathsep``. Relative paths in a TOML file are relative to the
file's directory, so a config works from any working directory.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DB = "ruvon_edge.db"
TOML_KEYS = ("db", "definitions", "allow_modules", "module_path")


class UsageError(Exception):
    """Bad input found by the CLI itself (exit 2)."""


class ConfigError(ValueError):
    """A setting is malformed; the message names the source (flag, variable or file)."""


@dataclass(frozen=True)
class Settings:
    """What a ``ruvon-edge`` verb needs to build a registry and open the store."""

    db: str = DEFAULT_DB
    definitions: list[str] = field(default_factory=list)
    allow_modules: list[str] = field(default_factory=list)
    module_path: list[str] = field(default_factory=list)


def _split_paths(value: str) -> list[str]:
    return [p for p in value.split(os.pathsep) if p.strip()]


def _split_modules(value: str) -> list[str]:
    return [m for m in re.split(rf"[,{re.escape(os.pathsep)}\s]+", value) if m]


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    if environ.get("RUVON_DB"):
        layer["db"] = environ["RUVON_DB"]
    if environ.get("RUVON_DEFINITIONS"):
        layer["definitions"] = _split_paths(environ["RUVON_DEFINITIONS"])
    if environ.get("RUVON_ALLOW_MODULES"):
        layer["allow_modules"] = _split_modules(environ["RUVON_ALLOW_MODULES"])
    if environ.get("RUVON_MODULE_PATH"):
        layer["module_path"] = _split_paths(environ["RUVON_MODULE_PATH"])
    return layer


def _from_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"--config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - set(TOML_KEYS))
    if unknown:
        raise ConfigError(
            f"--config {path}: unknown key {unknown[0]!r} (known: {', '.join(TOML_KEYS)})"
        )
    base = Path(path).resolve().parent
    layer: dict[str, Any] = {}
    for key, value in data.items():
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise ConfigError(f"--config {path}: {key} must be a string or a list of strings")
        if key == "db" and len(items) != 1:
            raise ConfigError(f"--config {path}: db must be a single string")
        if key != "allow_modules":
            items = [str(base / v) if v != ":memory:" else v for v in items]
        layer[key] = items[0] if key == "db" else items
    return layer


def resolve(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Merge the layers; ``flags`` holds the parsed options (``None``/absent = not given)."""
    environ = os.environ if environ is None else environ
    config = flags.get("config")
    layers = [
        {k: v for k in TOML_KEYS if (v := flags.get(k))},
        _from_env(environ),
        _from_toml(config) if config else {},
    ]
    merged: dict[str, Any] = {}
    for key in TOML_KEYS:
        for layer in layers:
            if key in layer:
                merged[key] = layer[key]
                break
    return Settings(**merged)

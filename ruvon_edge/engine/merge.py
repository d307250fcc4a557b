"""Merging a step's result dict into the workflow state.

Strategies (``merge_strategy``): ``shallow`` sets top-level keys, ``deep``
merges nested dicts key by key, ``replace`` swaps the whole state, ``append``
extends lists and otherwise behaves as shallow. A *conflict* is a key that
already holds a different, non-empty value; ``merge_conflict`` decides who wins
(``overwrite``), keeps the old value (``keep``) or fails the step (``error``).
"""

from __future__ import annotations

from typing import Any

from ruvon_edge.definition.models import MergeConflict, MergeStrategy


class MergeConflictError(ValueError):
    """A result key would overwrite a different existing value under ``merge_conflict: error``."""


def merge_result(
    state: dict[str, Any],
    result: dict[str, Any],
    strategy: MergeStrategy = MergeStrategy.SHALLOW,
    conflict: MergeConflict = MergeConflict.OVERWRITE,
) -> dict[str, Any]:
    """Return a new state dict: ``state`` with ``result`` merged in; inputs are not modified."""
    if strategy is MergeStrategy.REPLACE:
        return dict(result)
    merged = dict(state)
    _merge_into(merged, result, strategy, conflict, "")
    return merged


def _merge_into(
    target: dict[str, Any],
    result: dict[str, Any],
    strategy: MergeStrategy,
    conflict: MergeConflict,
    prefix: str,
) -> None:
    for key, new in result.items():
        path = f"{prefix}{key}"
        if key not in target:
            target[key] = new
            continue
        old = target[key]
        if strategy is MergeStrategy.DEEP and isinstance(old, dict) and isinstance(new, dict):
            nested = dict(old)
            _merge_into(nested, new, strategy, conflict, f"{path}.")
            target[key] = nested
        elif strategy is MergeStrategy.APPEND and isinstance(old, list) and isinstance(new, list):
            target[key] = old + new
        elif old == new or old is None or old == [] or old == {}:
            target[key] = new
        elif conflict is MergeConflict.OVERWRITE:
            target[key] = new
        elif conflict is MergeConflict.ERROR:
            raise MergeConflictError(
                f"result key {path!r} conflicts with the existing value ({old!r} != {new!r})"
            )
        # MergeConflict.KEEP: the existing value stays

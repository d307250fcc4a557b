"""Refuse, at the door, values a workflow could store but never sync: checked on start and resume.

A string with a lone surrogate (``"\\ud800"``, which ``json.loads`` accepts)
has no UTF-8 form, and NaN/Infinity are not JSON: SQLite would keep them,
but the sync agent could never encode them, and one such record used to stop
a device's sync for good. Nesting deeper than ``MAX_DEPTH`` is refused for the
same reason (the receiver's stores limit depth). The error names the path.

NUL (U+0000) is accepted: state is stored as JSON text, where it is the
escape ``\\u0000``, so it round-trips exactly and nothing is lost (a store
that cannot hold it, such as PostgreSQL ``jsonb``, must say so by record).
"""

from __future__ import annotations

import math
from typing import Any

from ruvon_edge.errors import UnstorableValueError

MAX_DEPTH = 100
"""Deepest nesting of objects and lists accepted in initial data and resume input."""


def check(value: Any, what: str) -> None:
    """Raise ``UnstorableValueError`` naming where in ``value`` the first unstorable value is."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, what, path)
        elif isinstance(item, float) and not math.isfinite(item):
            raise UnstorableValueError(
                f"{what}: {path or 'value'}: {item} is not valid JSON (use null or a string)"
            )
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_DEPTH:
                raise UnstorableValueError(
                    f"{what}: nested deeper than {MAX_DEPTH} levels at {path or 'the top'}"
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    where = f"{path}.{key}" if path else str(key)
                    if isinstance(key, str):
                        _check_text(key, what, where)
                    stack.append((child, where, depth + 1))
            else:
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))


def _check_text(text: str, what: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise UnstorableValueError(
            f"{what}: {path or 'value'}: a lone surrogate (U+{ord(bad):04X}) at character {exc.start} "
            "has no UTF-8 form and cannot be stored"
        ) from None

"""Page rendering: Jinja2's immutable sandbox with autoescaping, and the filters the pages use.

Templates live in the package (``templates/``), so nothing is fetched at run
time; every value is escaped on the way out, including whatever devices sent.
Table rows are read by subscript (``row["x"]``): the sandbox checks attribute
access on every lookup, and a hundred-row table pays for it in milliseconds.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

_KEY_ID = re.compile(r"rk_[0-9a-f]{24}")


def timestamp(value: float | None) -> str:
    """Epoch seconds as ``2026-12-01 23:10:05Z``; an em dash for none."""
    if value is None:
        return "\u2014"
    return _utc_text(datetime.fromtimestamp(value, UTC))


def device_time(value: str | None) -> str:
    """A device's RFC 3339 text shortened to seconds (``2026-12-01 23:10:05Z``)."""
    if not value:
        return "\u2014"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return _utc_text(parsed.astimezone(UTC) if parsed.tzinfo else parsed)


def _utc_text(moment: datetime) -> str:
    # isoformat, not strftime: glibc's strftime re-reads the local zone file on every call
    return moment.isoformat(sep=" ", timespec="seconds")[:19] + "Z"


def duration(seconds: float | None) -> str:
    """A span as ``850 ms``, ``42 s``, ``7 min``, ``5 h``, ``3 d``."""
    if seconds is None:
        return "\u2014"
    seconds = max(seconds, 0.0)
    for limit, unit, size in (
        (1, "ms", 0.001),
        (120, "s", 1),
        (7200, "min", 60),
        (172800, "h", 3600),
    ):
        if seconds < limit:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds / 86400:.0f} d"


def ago(value: float | None) -> str:
    """How long ago an epoch timestamp was (``5 min ago``); ``never`` for none."""
    return "never" if value is None else duration(time.time() - value) + " ago"


def presented_key(value: str | None) -> str:
    """A key id a refused request presented, shown only when shaped like one of ours.

    The header is the sender's text: someone may paste a secret or an operator
    token there, and the console must not echo it.
    """
    if not value:
        return "none"
    return value if _KEY_ID.fullmatch(value) else "(not a key id)"


def path_part(value: str) -> str:
    """One URL path segment (a ``/`` inside a workflow id is escaped too)."""
    return quote(str(value), safe="")


def pretty_json(value: Any) -> str:
    """Indented JSON for state and audit details (the text is escaped by the template)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=PackageLoader("ruvon_cloud.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        timestamp=timestamp, device_time=device_time, duration=duration, ago=ago,
        pretty_json=pretty_json,
        presented_key=presented_key,
        path_part=path_part, thousands=lambda n: f"{n:,}" if n is not None else "\u2014",
    )  # fmt: skip
    return env


_ENV = _environment()


def render(template: str, **context: Any) -> str:
    """Render one page template."""
    return _ENV.get_template(template).render(**context)

"""The one timestamp format: UTC ISO-8601 with microseconds and ``Z``.

Every timestamp the engine and the stores write (``created_at``,
``updated_at``, ``completed_at``, audit ``recorded_at``) and every one the
CLI prints has this fixed-width form, so they compare and sort as text and
what a command prints is exactly what is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_utc(at: datetime) -> str:
    """``at`` in the one format (a naive datetime is taken as UTC)."""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime(FORMAT)


def now_iso() -> str:
    """The current UTC time in the one format."""
    return datetime.now(UTC).strftime(FORMAT)


def iso_ago(seconds: float) -> str:
    """The UTC time ``seconds`` ago, in the one format."""
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime(FORMAT)

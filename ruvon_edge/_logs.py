"""JSON logs for the long-running commands (``serve``, ``ruvon-sync``, ``ruvon-cloud``).

One JSON object per line, ISO UTC timestamps, a level filter; journald keeps
the lines as they are. structlog is imported only when a service starts, and
no secret is ever an event field.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO


def configure_json_logs(level: str = "info", stream: TextIO | None = None) -> None:
    """Send structlog events as JSON lines to ``stream`` (stdout by default) from ``level`` up."""
    import structlog

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=True,
    )

"""One JSON line per log record for ``ruvon-cloud serve``: the receiver's own and uvicorn's.

The receiver logs through stdlib ``logging`` with its fields in ``extra``;
this routes every record (uvicorn's startup lines and tracebacks included)
through one structlog formatter, so journald gets JSON and nothing else.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def configure_json_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send every stdlib log record from ``level`` up to ``stream`` (stderr) as one JSON line."""
    import structlog

    chain: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_color,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


def _drop_color(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """uvicorn adds an ANSI-coloured copy of its message; JSON wants the plain one only."""
    event.pop("color_message", None)
    return event

"""JSON logs for the long-running commands (``serve``, ``ruvon-sync``, ``ruvon-cloud``).

The library itself only logs through stdlib ``logging`` (``ruvon_edge.*``
loggers, event name as the message, fields in ``extra``) and stays silent
unless the application configures logging. The daemons call
``configure_json_logs`` once: it puts one handler on the root logger whose
``structlog.stdlib.ProcessorFormatter`` renders every record, from stdlib or
from structlog, as one JSON object per line (ISO UTC timestamps, a level
filter); journald keeps the lines as they are. structlog is imported only
here, when a service starts, and no secret is ever an event field.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from structlog.typing import Processor


def configure_json_logs(level: str = "info", stream: TextIO | None = None) -> None:
    """Render every log record as a JSON line on ``stream`` (stdout by default) from ``level`` up.

    Calling it again replaces the handler it installed before (level and stream).
    """
    import structlog

    threshold = getattr(logging, level.upper(), logging.INFO)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.set_name("ruvon-json")
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(default=str),
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "ruvon-json"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)

"""``LoggingObserver``: every lifecycle hook as one log event.

It logs through stdlib ``logging`` (logger ``ruvon_edge.workflow``, the event
name as the message, the fields in ``extra``), so an application decides
where the events go; under the daemons structlog renders them as JSON lines
(see ``ruvon_edge._logs``).
"""

from __future__ import annotations

import logging
from typing import Any

from ruvon_edge.providers.observer import WorkflowObserver


class LoggingObserver(WorkflowObserver):
    """Logs workflow lifecycle events; step results are logged by their keys only (they may hold secrets)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("ruvon_edge.workflow")

    def _log(self, level: int, event: str, **fields: Any) -> None:
        self.logger.log(level, event, extra=fields)

    async def on_workflow_started(self, workflow_id, workflow_type):
        self._log(
            logging.INFO,
            "workflow_started",
            workflow_id=str(workflow_id),
            workflow_type=workflow_type,
        )

    async def on_step_executed(self, workflow_id, step_name, result, duration_ms=None):
        keys = sorted(result) if isinstance(result, dict) else None
        self._log(
            logging.INFO,
            "step_executed",
            workflow_id=str(workflow_id),
            step=step_name,
            result_keys=keys,
            duration_ms=None if duration_ms is None else round(duration_ms, 3),
        )

    async def on_workflow_completed(self, workflow_id):
        self._log(logging.INFO, "workflow_completed", workflow_id=str(workflow_id))

    async def on_workflow_failed(self, workflow_id, error):
        self._log(
            logging.WARNING, "workflow_failed", workflow_id=str(workflow_id), error=str(error)
        )

    async def on_workflow_status_changed(self, workflow_id, old_status, new_status):
        self._log(
            logging.INFO,
            "workflow_status_changed",
            workflow_id=str(workflow_id),
            old=old_status,
            new=new_status,
        )

    async def on_workflow_paused(self, workflow_id, step_name, reason):
        self._log(
            logging.INFO,
            "workflow_paused",
            workflow_id=str(workflow_id),
            step=step_name,
            reason=reason,
        )

    async def on_workflow_resumed(self, workflow_id, step_name, resume_data):
        keys = sorted(resume_data) if isinstance(resume_data, dict) else None
        self._log(
            logging.INFO,
            "workflow_resumed",
            workflow_id=str(workflow_id),
            step=step_name,
            input_keys=keys,
        )

    async def on_compensation_started(self, workflow_id, step_name, step_index):
        self._log(
            logging.INFO,
            "compensation_started",
            workflow_id=str(workflow_id),
            step=step_name,
            index=step_index,
        )

    async def on_compensation_completed(self, workflow_id, step_name, success, error=None):
        self._log(
            logging.INFO if success else logging.WARNING,
            "compensation_completed",
            workflow_id=str(workflow_id),
            step=step_name,
            success=success,
            error=error,
        )

    async def on_child_workflow_started(self, parent_id, child_id, child_type):
        self._log(
            logging.INFO,
            "child_workflow_started",
            parent_id=str(parent_id),
            child_id=str(child_id),
            child_type=child_type,
        )

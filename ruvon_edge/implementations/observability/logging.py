"""``LoggingObserver``: every lifecycle hook as one structlog event (JSON under ``serve``)."""

from __future__ import annotations

from typing import Any

import structlog

from ruvon_edge.providers.observer import WorkflowObserver


class LoggingObserver(WorkflowObserver):
    """Logs workflow lifecycle events; step results are logged by their keys only (they may hold secrets)."""

    def __init__(self, logger: Any = None) -> None:
        self.log = logger or structlog.get_logger("ruvon_edge.workflow")

    async def on_workflow_started(self, workflow_id, workflow_type):
        self.log.info("workflow_started", workflow_id=str(workflow_id), workflow_type=workflow_type)

    async def on_step_executed(self, workflow_id, step_name, result, duration_ms=None):
        keys = sorted(result) if isinstance(result, dict) else None
        self.log.info("step_executed", workflow_id=str(workflow_id), step=step_name, result_keys=keys,
                      duration_ms=None if duration_ms is None else round(duration_ms, 3))

    async def on_workflow_completed(self, workflow_id):
        self.log.info("workflow_completed", workflow_id=str(workflow_id))

    async def on_workflow_failed(self, workflow_id, error):
        self.log.warning("workflow_failed", workflow_id=str(workflow_id), error=str(error))

    async def on_workflow_status_changed(self, workflow_id, old_status, new_status):
        self.log.info("workflow_status_changed", workflow_id=str(workflow_id), old=old_status, new=new_status)

    async def on_workflow_paused(self, workflow_id, step_name, reason):
        self.log.info("workflow_paused", workflow_id=str(workflow_id), step=step_name, reason=reason)

    async def on_workflow_resumed(self, workflow_id, step_name, resume_data):
        keys = sorted(resume_data) if isinstance(resume_data, dict) else None
        self.log.info("workflow_resumed", workflow_id=str(workflow_id), step=step_name, input_keys=keys)

    async def on_compensation_started(self, workflow_id, step_name, step_index):
        self.log.info("compensation_started", workflow_id=str(workflow_id), step=step_name, index=step_index)

    async def on_compensation_completed(self, workflow_id, step_name, success, error=None):
        self.log.log(20 if success else 30, "compensation_completed", workflow_id=str(workflow_id),
                     step=step_name, success=success, error=error)

    async def on_child_workflow_started(self, parent_id, child_id, child_type):
        self.log.info("child_workflow_started", parent_id=str(parent_id), child_id=str(child_id), child_type=child_type)

"""Audit event names and the small builders the runner uses for audit and metric rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

WORKFLOW_STARTED = "WORKFLOW_STARTED"
STEP_COMPLETED = "STEP_COMPLETED"
STEP_FAILED = "STEP_FAILED"
WORKFLOW_WAITING = "WORKFLOW_WAITING"
WORKFLOW_RESUMED = "WORKFLOW_RESUMED"
WORKFLOW_COMPLETED = "WORKFLOW_COMPLETED"
WORKFLOW_FAILED = "WORKFLOW_FAILED"
WORKFLOW_CANCELLED = "WORKFLOW_CANCELLED"
WORKFLOW_RETRIED = "WORKFLOW_RETRIED"
COMPENSATION_COMPLETED = "COMPENSATION_COMPLETED"
COMPENSATION_FAILED = "COMPENSATION_FAILED"
WORKFLOW_ROLLED_BACK = "WORKFLOW_ROLLED_BACK"
SAGA_MODE_ENABLED = "SAGA_MODE_ENABLED"
LOOP_LIMIT_REACHED = "LOOP_LIMIT_REACHED"
STEPS_INJECTED = "STEPS_INJECTED"


def now_iso() -> str:
    """Current UTC time as ISO-8601 with microseconds."""
    return datetime.now(UTC).isoformat()


def event(
    event_type: str,
    step_name: str | None,
    old_status: str | None,
    new_status: str | None,
    **details: Any,
) -> dict[str, Any]:
    """One audit row as ``Transition.audit`` takes it."""
    return {
        "event_type": event_type,
        "step_name": step_name,
        "old_status": old_status,
        "new_status": new_status,
        "details": details,
    }


def duration_metric(step_name: str, duration_ms: float) -> dict[str, Any]:
    """The per-step duration metric."""
    return {
        "step_name": step_name,
        "metric_name": "step_duration_ms",
        "metric_value": duration_ms,
        "metadata": None,
    }

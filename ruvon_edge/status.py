"""Workflow statuses and the transitions allowed between them (a pure state machine)."""

from __future__ import annotations

from enum import StrEnum


class WorkflowStatus(StrEnum):
    """Every status a workflow instance can be in."""

    ACTIVE = "ACTIVE"
    PENDING_ASYNC = "PENDING_ASYNC"
    WAITING_HUMAN = "WAITING_HUMAN"
    PENDING_SUB_WORKFLOW = "PENDING_SUB_WORKFLOW"
    WAITING_CHILD_HUMAN_INPUT = "WAITING_CHILD_HUMAN_INPUT"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    FAILED_ROLLED_BACK = "FAILED_ROLLED_BACK"
    FAILED_CHILD_WORKFLOW = "FAILED_CHILD_WORKFLOW"
    FAILED_WORKER_CRASH = "FAILED_WORKER_CRASH"
    CANCELLED = "CANCELLED"


S = WorkflowStatus

TERMINAL: frozenset[str] = frozenset(
    {
        S.COMPLETED,
        S.FAILED,
        S.FAILED_ROLLED_BACK,
        S.FAILED_CHILD_WORKFLOW,
        S.FAILED_WORKER_CRASH,
        S.CANCELLED,
    }
)
"""Statuses a workflow never leaves on its own (``retry`` may revive a failed one)."""

WAITING: frozenset[str] = frozenset(
    {S.WAITING_HUMAN, S.PENDING_ASYNC, S.PENDING_SUB_WORKFLOW, S.WAITING_CHILD_HUMAN_INPUT}
)
"""Statuses in which ``run`` returns because something outside the runner must happen."""

RETRYABLE: frozenset[str] = frozenset({S.FAILED, S.FAILED_CHILD_WORKFLOW, S.FAILED_WORKER_CRASH})
"""Terminal statuses from which ``engine.retry`` restarts the failed step."""

FAILED: frozenset[str] = frozenset(
    {S.FAILED, S.FAILED_ROLLED_BACK, S.FAILED_CHILD_WORKFLOW, S.FAILED_WORKER_CRASH}
)
"""Terminal failures: synced to the cloud but kept on the device for a retention period."""

_ANY_LIVE = frozenset(S) - TERMINAL
_TRANSITIONS: dict[str, frozenset[str]] = {
    S.ACTIVE: frozenset(S) - {S.ACTIVE},
    S.PENDING_ASYNC: frozenset(
        {S.ACTIVE, S.CANCELLED, S.FAILED, S.FAILED_ROLLED_BACK, S.FAILED_WORKER_CRASH, S.COMPLETED}
    ),
    S.WAITING_HUMAN: frozenset(
        {S.ACTIVE, S.CANCELLED, S.COMPLETED, S.FAILED, S.FAILED_ROLLED_BACK}
    ),
    S.PENDING_SUB_WORKFLOW: frozenset(
        {
            S.ACTIVE,
            S.WAITING_CHILD_HUMAN_INPUT,
            S.FAILED_CHILD_WORKFLOW,
            S.FAILED_ROLLED_BACK,
            S.CANCELLED,
            S.COMPLETED,
            S.FAILED,
        }
    ),
    S.WAITING_CHILD_HUMAN_INPUT: frozenset(
        {
            S.PENDING_SUB_WORKFLOW,
            S.ACTIVE,
            S.FAILED_CHILD_WORKFLOW,
            S.FAILED_ROLLED_BACK,
            S.CANCELLED,
            S.COMPLETED,
            S.FAILED,
        }
    ),
    # retried, or given up on by an operator (cancel)
    S.FAILED: frozenset({S.ACTIVE, S.CANCELLED}),
    S.FAILED_CHILD_WORKFLOW: frozenset({S.ACTIVE, S.CANCELLED}),
    S.FAILED_WORKER_CRASH: frozenset({S.ACTIVE, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED_ROLLED_BACK: frozenset(),
    S.CANCELLED: frozenset(),
}


def is_terminal(status: str) -> bool:
    """Return True when ``status`` is final."""
    return status in TERMINAL


def can_transition(old: str, new: str) -> bool:
    """Return True when a workflow may move from ``old`` to ``new`` (same status is always fine)."""
    return old == new or new in _TRANSITIONS.get(old, frozenset())

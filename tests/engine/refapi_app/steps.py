"""Reference-style steps: keyword directives, in-place changes, context fields, mapping state."""

from __future__ import annotations

from pydantic import BaseModel

from ruvon_edge.models import StepContext, WorkflowJumpDirective, WorkflowPauseDirective


class FlowState(BaseModel):
    amount: float = 0
    trail: list[str] = []
    notes: str = ""
    risk_level: str = "low"
    approved_by: str | None = None
    seen_input: dict | None = None
    previous: dict | None = None
    flags: dict = {}


class ApprovalInput(BaseModel):
    approved: bool
    reviewer: str


def mark_and_jump(state: FlowState, context: StepContext) -> dict:
    state.trail.append("mark")  # kept: changed in place before the directive
    raise WorkflowJumpDirective(target_step_name="Finish", result={"notes": "jumped"})


def never(state: FlowState, context: StepContext) -> dict:
    return {"notes": "should not run"}


def finish(state: FlowState, context: StepContext) -> dict:
    state.trail.append("finish")
    return {"previous": context.previous_step_result}


def pause_for_approval(state: FlowState, context: StepContext) -> dict:
    state.trail.append("asked")
    raise WorkflowPauseDirective(result={"notes": "waiting"}, waiting_for="manager")


def record_approval(state: FlowState, context: StepContext, **user_input) -> dict:
    validated = context.validated_input
    return {"approved_by": validated.reviewer, "seen_input": dict(user_input)}


def score(state: FlowState, context: StepContext) -> dict:
    return {"risk_level": "high" if state.amount > 100 else "low"}


def review(state: FlowState, context: StepContext) -> dict:
    state.trail.append("review")
    return {}


def ship(state: FlowState, context: StepContext) -> dict:
    state.trail.append("ship")
    return {}


def dict_step(state, context: StepContext) -> dict:
    state["counter"] = state.get("counter", 0) + 1
    return {"doubled": state["counter"] * 2, "has_counter": "counter" in state}


def explode(state: FlowState, context: StepContext) -> dict:
    raise RuntimeError("declined")


def undo(state: FlowState, context: StepContext) -> dict:
    return {"notes": "undone"}


def task_flag(state, context: StepContext) -> dict:
    return {"flags": {"a": state["amount"] == state.amount}}


def task_bogus(state, context: StepContext) -> dict:
    return {"not_declared": 1}


def async_mapping(state, context: StepContext) -> dict:
    return {"notes": f"{state['amount']}/{state.get('risk_level')}/{'trail' in state}"}

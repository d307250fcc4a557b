"""Step functions and a definition for running the engine on the server-backed stores."""

from __future__ import annotations

from pydantic import BaseModel

FLOW = """
workflow_type: Refund
initial_state_model_path: server_app.RefundState
saga_mode: true
steps:
  - name: Hold
    function: server_app.hold
    compensate_function: server_app.unhold
  - name: Approve
    type: HUMAN_IN_LOOP
    input_model: server_app.Approval
    function: server_app.approve
  - name: Pay
    function: server_app.pay
"""


class RefundState(BaseModel):
    amount: float
    held: bool = False
    approver: str | None = None
    paid: bool = False


class Approval(BaseModel):
    approver: str


def hold(state, context):
    return {"held": True}


def unhold(state, context):
    return {"held": False}


def approve(state, context, approver):
    return {"approver": approver}


def pay(state, context):
    if state.amount > 100:
        raise ValueError("over the limit")
    return {"paid": True}


def registry():
    """Return a registry holding FLOW."""
    from ruvon_edge import WorkflowRegistry

    reg = WorkflowRegistry(allowed_modules=["server_app"])
    reg.register_yaml(FLOW)
    return reg

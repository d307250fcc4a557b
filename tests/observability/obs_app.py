"""A tiny saga used to drive the observers through a real engine."""

from __future__ import annotations

from pydantic import BaseModel

FLOW = """
workflow_type: Charge
initial_state_model_path: obs_app.ChargeState
saga_mode: true
steps:
  - name: Reserve
    function: obs_app.reserve
    compensate_function: obs_app.release
  - name: Pay
    function: obs_app.pay
"""


class ChargeState(BaseModel):
    amount: float
    reserved: bool = False
    paid: bool = False


def reserve(state, context):
    return {"reserved": True}


def release(state, context):
    return {"reserved": False}


def pay(state, context):
    if state.amount > 100:
        raise ValueError("card declined")
    return {"paid": True}


def registry():
    """Return a registry holding FLOW."""
    from ruvon_edge import WorkflowRegistry

    reg = WorkflowRegistry(allowed_modules=["obs_app"])
    reg.register_yaml(FLOW)
    return reg

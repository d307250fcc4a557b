"""State model and step functions of the till workflows (``checkout.yaml``, ``refund.yaml``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

try:  # the reference SDK's name for it, and ours: the same step code runs under both engines
    from ruvon.models import StartSubWorkflowDirective
except ImportError:
    from ruvon_edge import StartSubWorkflowDirective


class TillState(BaseModel):
    """One sale on a till."""

    order_id: str = ""
    amount: float = 0.0
    reserved: bool = False
    approved_by: str | None = None
    charged: bool = False
    receipt: str | None = None
    refunded: bool = False
    released: bool = False
    sub_workflow_results: dict[str, Any] = {}


class Approval(BaseModel):
    """What the supervisor enters at the approval step."""

    approver: str


def reserve(state, context, **_):
    """Hold the goods."""
    return {"reserved": True}


def approve(state, context, **user_input):
    """Record who approved the sale."""
    return {"approved_by": user_input["approver"]}


def charge(state, context, **_):
    """Charge the card; a negative amount is a card error."""
    if state.amount < 0:
        raise ValueError(f"card declined for {state.order_id}")
    return {"charged": True}


def print_receipt(state, context, **_):
    """Finish the sale."""
    return {"receipt": f"R-{state.order_id}"}


def settle_refund(state, context, **_):
    """An ASYNC task: settle a refund with the acquirer (the state arrives as a dict)."""
    return {"refunded": True}


def release(state, context, **_):
    """Compensation of ``reserve``: give the goods back."""
    return {"released": True}


def open_layaway(state, context, **_):
    """Put the goods aside: the sale itself is a child Checkout the parent waits for."""
    raise StartSubWorkflowDirective(
        workflow_type="Checkout",
        initial_data={"order_id": f"{state.order_id}-sale", "amount": state.amount},
    )


def close_layaway(state, context, **_):
    """Hand the goods over once the child sale completed."""
    return {"receipt": f"L-{state.order_id}"}

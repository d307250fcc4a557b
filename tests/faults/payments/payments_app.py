"""A two-step payment whose every step run leaves a marker line (``$PAYMENT_MARKERS``), so tests can count runs.

``capture`` fails while ``$PAYMENT_DECLINE`` is 1, so a test can fail a payment and later retry it.
"""

from __future__ import annotations

import os

from pydantic import BaseModel


class PaymentState(BaseModel):
    amount: int = 0
    note: str = ""
    authorized: bool = False
    captured: bool = False


def _mark(context, step: str) -> None:
    path = os.environ.get("PAYMENT_MARKERS")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{context.workflow_id} {step}\n")


def authorize(state: PaymentState, context) -> dict:
    _mark(context, "authorize")
    return {"authorized": True}


def capture(state: PaymentState, context) -> dict:
    _mark(context, "capture")
    if os.environ.get("PAYMENT_DECLINE") == "1":
        raise RuntimeError("card declined")
    return {"captured": True}

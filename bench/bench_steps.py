"""The benchmark workload, shared by both engines: a small state model and three trivial sync steps.

Each step stamps ``perf_counter()`` per workflow, so a runner can compute
step-to-step latency the same way for any engine (the gap between one step's
start and the next covers: merge, commit, route, dispatch).
"""

from __future__ import annotations

import time
from collections import defaultdict

from pydantic import BaseModel

STAMPS: dict[str, list[float]] = defaultdict(list)


class BenchState(BaseModel):
    """A small order-like state."""

    order_id: str = ""
    amount: float = 0.0
    reserved: bool = False
    charged: bool = False
    receipt: str = ""


def _stamp(context) -> None:
    STAMPS[str(context.workflow_id)].append(time.perf_counter())


def reserve(state, context, **_):
    """Step 1."""
    _stamp(context)
    return {"reserved": True}


def charge(state, context, **_):
    """Step 2."""
    _stamp(context)
    return {"charged": True, "amount": state.amount + 1}


def receipt(state, context, **_):
    """Step 3."""
    _stamp(context)
    return {"receipt": f"R-{state.order_id}"}


def definition(with_model: bool = True) -> dict:
    """The 3-step workflow as the YAML dict both engines read."""
    steps = [
        {
            "name": n,
            "type": "STANDARD",
            "function": f"bench_steps.{n.lower()}",
            "automate_next": True,
        }
        for n in ("Reserve", "Charge", "Receipt")
    ]
    steps[-1]["automate_next"] = False
    return {
        "workflow_type": "Bench3",
        "workflow_version": "1",
        "initial_state_model_path": "bench_steps.BenchState",
        "steps": steps,
    }

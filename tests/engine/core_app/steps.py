"""Step functions for the core engine tests; they record what ran in the state's ``trail``."""

from __future__ import annotations

import asyncio
import os
import time

from ruvon_edge import WorkflowJumpDirective, WorkflowPauseDirective

_calls: dict[str, int] = {}


def reserve(state, context):
    state.trail.append("reserve")
    return {"reserved": True}


def release(state, context):
    state.released.append("reserve")
    return {}


def charge(state, context):
    state.trail.append("charge")
    return {"tags": ["charged"]}


def refund(state, context):
    state.released.append("charge")
    return {}


def refund_broken(state, context):
    raise RuntimeError("refund service down")


def score(state, context):
    state.trail.append("score")
    return {"route": "review" if state.amount > 50 else "ship"}


def ship(state, context):
    state.trail.append("ship")
    return {}


def apply_review(state, context, approved, reviewer):
    state.trail.append("review")
    return {"approved": approved, "reviewer": reviewer}


def explode(state, context):
    raise ValueError("card declined")


def flaky(state, context):
    """Fails on the first two attempts of each workflow."""
    key = context.workflow_id
    _calls[key] = _calls.get(key, 0) + 1
    if _calls[key] < 3:
        raise ConnectionError(f"attempt {_calls[key]} failed")
    return {"attempts": _calls[key]}


def fail_unless_env(state, context):
    if os.environ.get("RUVON_TEST_FIXED") != "1":
        raise RuntimeError("not fixed yet")
    state.trail.append("fixed")
    return {}


def slow_sync(state, context):
    time.sleep(3)
    return {}


async def slow_async(state, context):
    await asyncio.sleep(5)
    return {}


def sleepy(state, context):
    time.sleep(0.3)
    state.trail.append("sleepy")
    return {}


async def async_step(state, context):
    await asyncio.sleep(0)
    state.trail.append("async")
    return {"tags": ["async"]}


def jump_to_ship(state, context):
    raise WorkflowJumpDirective("Ship")


def pause_for_docs(state, context, **user_input):
    if not user_input:
        raise WorkflowPauseDirective("need documents")
    return {"profile": {"docs": user_input["docs"]}}


def returns_text(state, context):
    return "not a dict"


def swallow_everything(state, context):
    try:
        raise WorkflowJumpDirective("Ship")
    except Exception:  # user code that swallows Exception must not swallow directives
        return {"route": "swallowed"}


def profile_a(state, context):
    return {"profile": {"a": 1, "nested": {"x": 1}}, "tags": ["a"]}


def profile_b(state, context):
    return {"profile": {"b": 2, "nested": {"y": 2}}, "tags": ["b"]}


def set_country_fr(state, context):
    return {"country": "FR"}

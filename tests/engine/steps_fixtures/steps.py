"""Step, task and merge functions used by the step-type tests; plain functions, no test doubles."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ruvon_edge import StartSubWorkflowDirective

HANG_ENV = "RUVON_TEST_HANG_AT"
"""Set in a crash-test subprocess: the task/iteration with this index blocks until killed."""


def _mark(state, what: str) -> None:
    """Append one line per execution to the state's marker file (crash tests count them)."""
    directory = getattr(state, "marker_dir", None)
    if directory:
        with open(Path(directory) / "markers.log", "a", encoding="utf-8") as f:
            f.write(f"{what} {os.getpid()}\n")
            f.flush()
            os.fsync(f.fileno())


def _hang_if_asked(index: int) -> None:
    if os.environ.get(HANG_ENV) == str(index):
        while True:  # until SIGKILL
            time.sleep(0.05)


# -- PARALLEL ----------------------------------------------------------------------------
def double(state, context, item, index):
    _mark(state, f"item-{index}")
    _hang_if_asked(index)
    return {"values": [item * 2], "indexes": [index]}


def fail_on_three(state, context, item, index):
    """Fails for item 3 until the file named by state.fix_file exists."""
    _mark(state, f"item-{index}")
    if item == 3 and not Path(getattr(state, "fix_file", "") or "/nonexistent").exists():
        raise ValueError(f"item {item} is cursed")
    return {"values": [item]}


def sleepy(state, context, item, index):
    time.sleep(item)
    return {"slept": [item]}


def task_a(state, context, x=1):
    return {"a": x}


def task_b(state, context):
    return {"b": state.base + 1}


def task_broken(state, context):
    raise RuntimeError("sensor offline")


def task_not_a_dict(state, context, **_):
    return 42


def sum_values(results):
    return {"total": sum(sum(r["result"]["values"]) for r in results if r["status"] == "COMPLETED")}


# -- LOOP --------------------------------------------------------------------------------
def add_item(state, context):
    _mark(state, f"iter-{context.loop_index}")
    _hang_if_asked(context.loop_index)
    return {"total": state.total + context.loop_item, "seen": [*state.seen, context.loop_index]}


def double_total(state, context):
    return {"total": state.total * 2}


def count_up(state, context):
    state.n += 1
    return {}


def explode_at_two(state, context):
    """Fails at index 2 until the file named by state.fix_file exists."""
    _mark(state, f"iter-{context.loop_index}")
    if (
        context.loop_index == 2
        and not Path(getattr(state, "fix_file", "") or "/nonexistent").exists()
    ):
        raise RuntimeError("bad item")
    return {"total": state.total + context.loop_item}


def shrink_items(state, context):
    """Changes the very list being iterated; the loop must keep its original items."""
    return {"items": [], "total": state.total + context.loop_item}


# -- SUB_WORKFLOW ------------------------------------------------------------------------
def child_work(state, context):
    _mark(state, "child-work")
    return {"doubled": state.value * 2, "child_parent": context.parent_id}


def child_explode(state, context):
    raise ValueError("child broke")


def start_child_by_directive(state, context):
    raise StartSubWorkflowDirective("Child", {"value": state.value + 1})


def after_child(state, context):
    return {"after": state.sub_workflow_results["Child"]["doubled"]}


def reserve(state, context):
    return {"reserved": True}


def release(state, context):
    return {"released": True}


def approve(state, context, approved):
    return {"approved": approved}


# -- FIRE_AND_FORGET ---------------------------------------------------------------------
def note(state, context):
    return {"noted": f"{state.source}:{state.value}"}


def parent_done(state, context):
    return {"parent_done": True}

"""Workflows and task functions run by real worker processes in the executor tests.

Task functions append ``<task key> <pid>`` to ``state.log`` so tests can see
what ran where, exactly as often as it ran.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel, Field

FLOWS = [
    """
workflow_type: Remote
initial_state_model_path: exec_app.JobState
steps:
  - name: Work
    type: ASYNC
    function: exec_app.work
  - name: After
    function: exec_app.after
""",
    """
workflow_type: RemoteSaga
initial_state_model_path: exec_app.JobState
saga_mode: true
steps:
  - name: Reserve
    function: exec_app.after
    compensate_function: exec_app.undo
  - name: Work
    type: ASYNC
    function: exec_app.explode
""",
    """
workflow_type: FanOut
initial_state_model_path: exec_app.JobState
steps:
  - name: Square
    type: PARALLEL
    iterate_over: state.items
    task_function: exec_app.square
    merge_strategy: APPEND
""",
]


class JobState(BaseModel):
    log: str
    key: str = ""
    sleep: float = 0.0
    items: list[int] = Field(default_factory=list)
    worked_by: int | None = None
    after: bool = False
    undone: bool = False
    squares: list[int] = []


def _record(state: JobState, what: str) -> None:
    with open(state.log, "a") as f:
        f.write(f"{what} {os.getpid()}\n")


def work(state: JobState, context):
    """Record the run; if ``sleep`` is set, leave a marker first and sleep (a worker to kill)."""
    if state.sleep and context.attempt == 1 and not Path(state.log + ".started").exists():
        Path(state.log + ".started").write_text(str(os.getpid()))
        time.sleep(state.sleep)
    _record(state, state.key)
    return {"worked_by": os.getpid()}


def after(state: JobState, context):
    return {"after": True}


def undo(state: JobState, context):
    return {"undone": True}


def explode(state: JobState, context):
    _record(state, "explode")
    raise RuntimeError("printer on fire")


def square(state: JobState, context, item: int, index: int):
    """A fan-out task that reads its state as a mapping too, as reference task code does."""
    if state["log"] != state.get("log") or "log" not in state:
        raise TypeError("the task's state does not read as a mapping")
    _record(state, f"square-{item}")
    if item < 0:
        raise ValueError(f"negative item {item}")
    return {"squares": [item * item]}


def registry():
    """Return a registry holding the flows."""
    from ruvon_edge import WorkflowRegistry

    reg = WorkflowRegistry(allowed_modules=["exec_app"])
    for flow in FLOWS:
        reg.register_yaml(flow)
    return reg

"""ASYNC steps: hand the function to a worker; the workflow waits PENDING_ASYNC for its result.

Dispatch. The task gets a deterministic id, ``{workflow_id}:{step}:{n}``
(``n`` counts this workflow's dispatches and is kept in the row's context),
so re-running the same transition after a crash dispatches the same task,
and a step visited twice gets two tasks. How the task leaves depends on the
execution provider:

* Local providers (the default): the task row is returned in
  ``Outcome.tasks`` and committed in the SAME transaction as PENDING_ASYNC,
  never through ``dispatch_async_task`` before the commit. A crash can
  therefore not leave a waiting workflow without its task, or a task without
  its waiting workflow. ``ruvon-edge serve`` claims and runs it.
* Providers that run tasks elsewhere set ``dispatches_remotely = True``
  (Celery, PostgresExecutor): their ``dispatch_async_task`` is called with
  the deterministic id in ``context["task_id"]`` just before the commit.
  Dispatch is at-least-once (a crash before the commit dispatches the same id
  again, which such providers de-duplicate); a result for a task the workflow
  no longer waits for is ignored by ``engine.complete_async_task``.

Completion. ``engine.complete_async_task`` stores the task's outcome in the
step's memory and runs this handler again with the workflow still
PENDING_ASYNC: the result then completes the step (merged, routed, one
commit) and an error fails it (saga compensation when ``saga_mode``).
"""

from __future__ import annotations

from typing import Any

from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.errors import StepFailedError
from ruvon_edge.status import WorkflowStatus

S = WorkflowStatus

DEFAULT_TASK_ATTEMPTS = 3
"""How often a task is (re)claimed after its worker died before the step fails."""


def task_id_for(workflow_id: str, step_name: str, n: int) -> str:
    """The deterministic id of the ``n``-th task a workflow dispatched."""
    return f"{workflow_id}:{step_name}:{n}"


def workflow_of_task(task_id: str) -> str:
    """The workflow id inside a task id (ids are ``{workflow_id}:{step}:{n}``)."""
    return task_id.split(":", 1)[0]


async def run_async_step(run: StepRun) -> Outcome:
    """Dispatch the step's function (first visit) or finish the step with its task's outcome."""
    memory = run.memory
    done = memory.get("outcome")
    if run.row["status"] == S.PENDING_ASYNC and done is not None:
        if done.get("error") is not None:
            raise StepFailedError(
                f"task {memory['task_id']} failed: {done['error']}", run.row["id"], run.step.name
            )
        return Outcome(result=done.get("result") or {}, details={"task_id": memory["task_id"]})
    context = run.row["context"]
    n = int(context.get("async_dispatches", 0)) + 1
    context["async_dispatches"] = n
    task_id = task_id_for(run.row["id"], run.step.name, n)
    memory.clear()
    memory["task_id"] = task_id
    state = run.state.model_dump(mode="json")
    step_context = {**run.context.as_dict(), "task_id": task_id}
    outcome = Outcome(wait=S.PENDING_ASYNC, wait_reason=f"waiting for task {task_id}", merge=False)
    execution = run.engine.execution
    if getattr(execution, "dispatches_remotely", False):
        await execution.dispatch_async_task(
            run.row["id"], run.step.name, run.step.function or "", state, step_context
        )
    else:
        outcome.tasks.append(task_row(task_id, run, state, step_context))
    return outcome


def task_row(
    task_id: str, run: StepRun, state: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    """The task as ``persistence.enqueue_task`` (and ``Transition.tasks``) take it."""
    return {
        "task_id": task_id,
        "workflow_id": run.row["id"],
        "step_name": run.step.name,
        "function_path": run.step.function,
        "payload": {"state": state, "context": context},
        "max_attempts": DEFAULT_TASK_ATTEMPTS,
    }

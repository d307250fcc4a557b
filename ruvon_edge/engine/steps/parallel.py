"""PARALLEL steps: static ``tasks`` or a fan-out over a list, through the execution provider.

Tasks. Static tasks are ``{name, function, kwargs}``. A fan-out evaluates
``iterate_over`` (the safe expression language, e.g. ``state.orders``) and
makes one task per item: ``task_function(state, context, <item_var_name>=item,
index=i)``, named ``<step>[i]``. Task functions get a copy of the state as a
``StateDict`` (``state.x`` and ``state["x"]`` both work, as the reference
hands tasks a dict; workers of remote providers rebuild the state model);
what they change in it is discarded, what they return is their result.

Batches. ``batch_size`` tasks are handed to ``execution.dispatch_parallel_tasks``
at a time (all at once by default). After each finished batch but the last,
the results are committed in the step's memory: after a crash ``engine.run``
re-runs only the unfinished batch (at-least-once for that batch, never for a
finished one), and ``engine.retry`` after a failure re-runs only the tasks that
did not succeed. ``timeout_seconds`` bounds the whole fan-out of this run.

Failures. A task that raises (or returns something other than a dict) is a
failed task. Without ``allow_partial_success`` any failure fails the step,
naming the failed tasks and their errors; with it, the successful results
merge and the errors are kept in the audit row (``failed_tasks``); every
task failing fails the step all the same.

Merging. ``merge_function(results) -> dict`` gets every task's entry
``{name, status, result | error}`` in task order. Without one, the results
merge into the top level of the state in task order with the step's
``merge_strategy`` and ``merge_conflict``, as the reference does (``append``
concatenates the lists of a fan-out); each task's result stays in the audit
row (``task_results``). A result key the state model does not declare fails
the step: it is never dropped silently.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ruvon_edge.definition.state import StateDict
from ruvon_edge.engine.invoke import normalise_result
from ruvon_edge.engine.merge import merge_result
from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.errors import StepFailedError
from ruvon_edge.expressions import evaluate

COMPLETED, FAILED = "COMPLETED", "FAILED"
_ERRORS_IN_MESSAGE = 5


async def run_parallel_step(run: StepRun) -> Outcome:
    """Run the step's tasks in batches, keep finished batches durable, merge the results."""
    step = run.step
    tasks = _tasks(run)
    done: dict[str, dict[str, Any]] = run.memory.setdefault("done", {})
    pending = [t for t in tasks if done.get(t["name"], {}).get("status") != COMPLETED]
    size = step.batch_size or max(len(pending), 1)
    deadline = time.monotonic() + step.timeout_seconds if step.timeout_seconds else None
    for start in range(0, len(pending), size):
        batch = pending[start : start + size]
        for entry in await _dispatch(run, batch, deadline):
            done[entry["name"]] = entry
        if start + size < len(pending):
            await run.checkpoint()
    entries = [done[t["name"]] for t in tasks]
    failed = [{"name": e["name"], "error": e["error"]} for e in entries if e["status"] != COMPLETED]
    if failed and (not step.allow_partial_success or len(failed) == len(tasks)):
        listed = "; ".join(f"{f['name']}: {f['error']}" for f in failed[:_ERRORS_IN_MESSAGE])
        more = (
            f" (and {len(failed) - _ERRORS_IN_MESSAGE} more)"
            if len(failed) > _ERRORS_IN_MESSAGE
            else ""
        )
        raise StepFailedError(
            f"{len(failed)} of {len(tasks)} parallel tasks failed: {listed}{more}"
        )
    details: dict[str, Any] = {
        "tasks": len(tasks),
        "succeeded": len(tasks) - len(failed),
        "task_results": {e["name"]: e.get("result") for e in entries if e["status"] == COMPLETED},
    }
    if failed:
        details["failed_tasks"] = failed
    return Outcome(result=_merge(run, entries), details=details)


def _tasks(run: StepRun) -> list[dict[str, Any]]:
    step = run.step
    if step.tasks:
        return [
            {"name": t.name, "function": t.function, "kwargs": dict(t.kwargs)} for t in step.tasks
        ]
    items = evaluate(step.iterate_over or "", {"state": run.state})
    if not isinstance(items, list | tuple):
        raise StepFailedError(
            f"iterate_over {step.iterate_over!r} gave a {type(items).__name__}, not a list"
        )
    return [
        {
            "name": f"{step.name}[{i}]",
            "function": step.task_function,
            "kwargs": {step.item_var_name: item, "index": i},
        }
        for i, item in enumerate(items)
    ]


async def _dispatch(
    run: StepRun, batch: list[dict[str, Any]], deadline: float | None
) -> list[dict[str, Any]]:
    """Run one batch; a task's non-dict result makes it a failed task."""
    # Task functions are called like step functions, fn(state, StepContext, **kwargs):
    # in-process providers hand both through (the ABC's ExecutionContext hint is too narrow).
    execution = run.engine.execution
    state: Any = (
        run.state.model_copy(deep=True)  # serialised for workers, who rebuild the model
        if getattr(execution, "dispatches_remotely", False)
        else StateDict(run.state.model_dump(mode="json"))
    )
    call = execution.dispatch_parallel_tasks(
        run.row["id"],
        batch,
        state,
        run.context,  # type: ignore[arg-type]
    )
    if deadline is None:
        entries = await call
    else:
        try:
            entries = await asyncio.wait_for(call, max(deadline - time.monotonic(), 0))
        except TimeoutError:
            raise StepFailedError(
                f"parallel tasks timed out after {run.step.timeout_seconds:g} s"
            ) from None
    checked = []
    for entry in entries:
        entry = dict(entry)
        if entry.get("status") == COMPLETED:
            try:
                entry["result"] = normalise_result(entry.get("result"), f"task {entry['name']!r}")
            except TypeError as exc:
                entry = {"name": entry["name"], "status": FAILED, "error": f"TypeError: {exc}"}
        checked.append(entry)
    return checked


def _merge(run: StepRun, entries: list[dict[str, Any]]) -> dict[str, Any]:
    step = run.step
    if step.merge_function:
        merged = run.engine.registry.resolve(step.merge_function)(entries)
        return normalise_result(merged, f"merge function {step.merge_function!r}")
    combined: dict[str, Any] = {}
    for entry in entries:
        if entry["status"] == COMPLETED:
            _check_declared(run, entry)
            combined = merge_result(
                combined, entry["result"], step.merge_strategy, step.merge_conflict
            )
    return combined


def _check_declared(run: StepRun, entry: dict[str, Any]) -> None:
    """A result key the state model does not declare fails the step (a model that allows extras takes any)."""
    model = type(run.state)
    if model.model_config.get("extra") == "allow":
        return
    unknown = [k for k in entry["result"] if k not in model.model_fields]
    if unknown:
        raise StepFailedError(
            f"task {entry['name']!r} returned {', '.join(map(repr, unknown))}, "
            f"which {model.__name__} does not declare"
        )

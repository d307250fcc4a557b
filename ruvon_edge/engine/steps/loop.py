"""LOOP steps: ITERATE over a list or repeat WHILE a condition holds, durably per iteration.

The body is the step's own ``function`` or its ``loop_body`` steps (their
functions, in order, each with its retry, timeout and merge settings; other
step kinds are refused). Every body call gets ``context.loop_item`` and
``context.loop_index``; its result merges into the state the next call sees.

Limits. ITERATE evaluates ``iterate_over`` once (the list is kept in the
step's memory, so a body that changes the list does not shift the items); a
list longer than ``max_iterations`` fails the step before any iteration runs.
WHILE evaluates ``while_condition`` before each iteration; still true after
``max_iterations`` iterations fails the step. Never a silent truncation.

Durability. After every iteration the state and the next index are committed
(``run.checkpoint``): after a crash ``engine.run`` continues with the
iteration that was running, and a finished iteration never runs again. A
failing iteration fails the step with the state of the last finished one;
``engine.retry`` continues from the failed iteration.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ValidationError

from ruvon_edge.definition.models import StepDefinition
from ruvon_edge.engine.invoke import call_step
from ruvon_edge.engine.merge import merge_result
from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.errors import StepFailedError
from ruvon_edge.expressions import evaluate


async def run_loop_step(run: StepRun) -> Outcome:
    """Run the remaining iterations, committing progress after each, and complete with the final state."""
    step = run.step
    memory = run.memory
    items = _items(run) if step.mode == "ITERATE" else None
    index: int = memory.get("index", 0)
    state = run.state
    while True:
        if items is not None:
            if index >= len(items):
                break
            item = items[index]
        else:
            if not run.engine.expression_evaluator.evaluate(
                step.while_condition or "", {"state": state}
            ):
                break
            if index >= step.max_iterations:
                raise StepFailedError(
                    f"while_condition still true after max_iterations={step.max_iterations}"
                )
            item = None
        state = await _iteration(run, state, item, index)
        index += 1
        memory["index"] = index
        run.row["state"] = state.model_dump(mode="json")
        if items is None or index < len(items):
            await run.checkpoint()
    return Outcome(state=state, details={"iterations": index})


def _items(run: StepRun) -> list[Any]:
    memory = run.memory
    if "items" not in memory:
        step = run.step
        items = evaluate(step.iterate_over or "", {"state": run.row["state"]})
        if not isinstance(items, list | tuple):
            raise StepFailedError(
                f"iterate_over {step.iterate_over!r} gave a {type(items).__name__}, not a list"
            )
        if len(items) > step.max_iterations:
            raise StepFailedError(
                f"iterate_over has {len(items)} items, more than max_iterations={step.max_iterations}"
            )
        memory["items"] = list(items)
    return memory["items"]


async def _iteration(run: StepRun, state: BaseModel, item: Any, index: int) -> BaseModel:
    """Run the body once; return the state after it."""
    bodies: list[StepDefinition] = run.step.loop_body or [run.step]
    for body in bodies:
        if body.function is None:
            raise StepFailedError(
                f"loop body step {body.name!r} has no function (only function steps run in a loop)"
            )
        context = replace(
            run.context, step_name=body.name, loop_item=item, loop_index=index, attempt=1
        )
        function = run.engine.registry.resolve(body.function)
        try:
            new_state, result, _ = await call_step(
                run.engine.execution,
                function,
                state,
                context,
                {},
                retry=body.retry,
                timeout=body.timeout_seconds,
            )
        except Exception as exc:  # name the iteration; directives pass through to the runner
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise StepFailedError(f"iteration {index}, step {body.name!r}: {text}") from exc
        merged = merge_result(
            new_state.model_dump(mode="json"), result, body.merge_strategy, body.merge_conflict
        )
        try:
            state = type(state).model_validate(merged)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise StepFailedError(
                f"iteration {index}, step {body.name!r}: result does not fit the state model: {where}: {first['msg']}"
            ) from None
    return state

"""LOOP steps: ITERATE over a list or repeat WHILE a condition holds, durably per iteration.

The body is the step's own ``function`` or its ``loop_body`` steps, in
order: function steps with their retry, timeout and merge settings, and any
other step kind through its own handler (an HTTP poll in a WHILE loop); a
body step may not wait (human input, an ASYNC task, a child). Every body
step gets ``context.loop_item`` and ``context.loop_index``; its result merges
into the state the next one sees.

Limits. ITERATE evaluates ``iterate_over`` once (the list is kept in the
step's memory, so a body that changes the list does not shift the items).
WHILE evaluates ``while_condition`` before each iteration. At
``max_iterations`` (more items, or the condition still true) the loop stops
and the step completes, as the reference documents (``on_max_iterations:
stop``, the default), or fails (``fail``, before any iteration for a list
that is too long). Either way a ``LOOP_LIMIT_REACHED`` audit row says so:
never a silent truncation.

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

from ruvon_edge.definition.models import StepDefinition, StepType
from ruvon_edge.engine import audit
from ruvon_edge.engine.context import StepContext
from ruvon_edge.engine.invoke import call_step
from ruvon_edge.engine.merge import merge_result
from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.errors import StepFailedError, TemplateError
from ruvon_edge.expressions import evaluate


async def run_loop_step(run: StepRun) -> Outcome:
    """Run the remaining iterations, committing progress after each, and complete with the final state."""
    step = run.step
    memory = run.memory
    items = _items(run) if step.mode == "ITERATE" else None
    index: int = memory.get("index", 0)
    state = run.state
    events = []
    while True:
        if items is not None:
            if index >= len(items):
                break
            if index >= step.max_iterations:
                events.append(_limit_reached(run, f"{len(items) - index} items not processed"))
                break
            item = items[index]
        else:
            if not run.engine.expression_evaluator.evaluate(
                step.while_condition or "", {"state": state}
            ):
                break
            if index >= step.max_iterations:
                if step.on_max_iterations == "fail":
                    raise StepFailedError(
                        f"while_condition still true after max_iterations={step.max_iterations}"
                    )
                events.append(_limit_reached(run, "while_condition still true"))
                break
            item = None
        state = await _iteration(run, state, item, index)
        index += 1
        memory["index"] = index
        run.row["state"] = state.model_dump(mode="json")
        if items is None or index < len(items):
            await run.checkpoint()
    return Outcome(state=state, details={"iterations": index}, events=events)


def _limit_reached(run: StepRun, what: str) -> dict[str, Any]:
    status = run.row["status"]
    return audit.event(
        audit.LOOP_LIMIT_REACHED,
        run.step.name,
        status,
        status,
        max_iterations=run.step.max_iterations,
        reason=f"stopped at max_iterations={run.step.max_iterations}: {what}",
    )


def _items(run: StepRun) -> list[Any]:
    memory = run.memory
    if "items" not in memory:
        step = run.step
        items = evaluate(step.iterate_over or "", {"state": run.row["state"]})
        if not isinstance(items, list | tuple):
            raise StepFailedError(
                f"iterate_over {step.iterate_over!r} gave a {type(items).__name__}, not a list"
            )
        if len(items) > step.max_iterations and step.on_max_iterations == "fail":
            raise StepFailedError(
                f"iterate_over has {len(items)} items, more than max_iterations={step.max_iterations}"
            )
        memory["items"] = list(items)
    return memory["items"]


async def _iteration(run: StepRun, state: BaseModel, item: Any, index: int) -> BaseModel:
    """Run the body once; return the state after it."""
    bodies: list[StepDefinition] = run.step.loop_body or [run.step]
    for body in bodies:
        context = replace(
            run.context, step_name=body.name, loop_item=item, loop_index=index, attempt=1
        )
        try:
            new_state, result = await _body_step(run, body, state, context)
        except Exception as exc:  # name the iteration; directives pass through to the runner
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if isinstance(exc, StepFailedError | TemplateError):
                text = exc.reason if isinstance(exc, StepFailedError) else str(exc)
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


_FUNCTION_KINDS = (StepType.STANDARD, StepType.DECISION)


async def _body_step(
    run: StepRun, body: StepDefinition, state: BaseModel, context: StepContext
) -> tuple[BaseModel, dict[str, Any]]:
    """One body step: a function call, or any other step kind through its handler."""
    if body.function is not None and (body is run.step or body.type in _FUNCTION_KINDS):
        function = run.engine.registry.resolve(body.function)
        new_state, result, _ = await call_step(
            run.engine.execution, function, state, context, {},
            retry=body.retry, timeout=body.timeout_seconds,
        )  # fmt: skip
        return new_state, result
    from ruvon_edge.engine.steps import handler_for  # the table imports this module

    inner = StepRun(run.engine, run.definition, body, run.row, state, context)
    outcome = await handler_for(body.type)(inner)
    run.row["context"].get("steps", {}).pop(body.name, None)
    if outcome.wait is not None:
        raise StepFailedError(f"a loop body step cannot wait ({outcome.wait})")
    return outcome.state or state, outcome.result if outcome.merge else {}

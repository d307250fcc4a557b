"""PARALLEL steps on a real SQLite file: static tasks, fan-out, batches, failures, timeouts, merging."""

from __future__ import annotations

import time

import pytest
from steps_fixtures.harness import registry_of

from ruvon_edge import WorkflowEngine
from ruvon_edge.implementations.execution.thread_pool import ThreadPoolExecutionProvider


def fan_out(name: str, function: str, extra: str = "") -> str:
    return f"""
workflow_type: {name}
steps:
  - name: Fan
    type: PARALLEL
    iterate_over: state.items
    task_function: steps_fixtures.steps.{function}
    item_var_name: item
    merge_strategy: APPEND
{extra}
"""


STATIC = """
workflow_type: Static
steps:
  - name: Gather
    type: PARALLEL
    tasks:
      - {name: a, function: steps_fixtures.steps.task_a, kwargs: {x: 7}}
      - {name: b, function: steps_fixtures.steps.task_b}
"""

STATIC_PARTIAL = """
workflow_type: StaticPartial
steps:
  - name: Gather
    type: PARALLEL
    allow_partial_success: true
    tasks:
      - {name: a, function: steps_fixtures.steps.task_a}
      - {name: broken, function: steps_fixtures.steps.task_broken}
"""

STATIC_STRICT = STATIC_PARTIAL.replace("StaticPartial", "StaticStrict").replace(
    "allow_partial_success: true", "allow_partial_success: false"
)


@pytest.fixture
async def engine(sqlite_store):
    registry = registry_of(
        STATIC,
        STATIC_PARTIAL,
        STATIC_STRICT,
        fan_out("Double", "double", "    batch_size: 2"),
        fan_out("Cursed", "fail_on_three"),
        fan_out("CursedPartial", "fail_on_three", "    allow_partial_success: true"),
        fan_out("Summed", "double", "    merge_function: steps_fixtures.steps.sum_values"),
        fan_out("NotADict", "task_not_a_dict"),
        fan_out("Slow", "sleepy", "    timeout_seconds: 0.3"),
        fan_out("Scalar", "double").replace("state.items", "state.count"),
    )
    async with WorkflowEngine(persistence=sqlite_store, registry=registry) as eng:
        yield eng


async def run(engine, workflow_type, data):
    return await engine.run((await engine.start_workflow(workflow_type, data)).id)


async def test_static_tasks_merge_into_the_top_level_of_the_state(engine):
    """Static tasks run with their kwargs; their results merge into the state, each kept in the audit row."""
    wf = await run(engine, "Static", {"base": 1})
    assert wf.status == "COMPLETED"
    assert (wf.state.a, wf.state.b) == (7, 2)
    audit = [a for a in await engine.get_audit_log(wf.id) if a.event_type == "STEP_COMPLETED"]
    assert audit[0].details["task_results"] == {"a": {"a": 7}, "b": {"b": 2}}


async def test_fan_out_runs_one_task_per_item_in_batches_in_item_order(engine, sqlite_store):
    """A fan-out over 5 items with batch_size 2 appends 5 results in item order, committing progress per batch."""
    before = sqlite_store.commit_count
    wf = await run(engine, "Double", {"items": [1, 2, 3, 4, 5]})
    assert wf.status == "COMPLETED"
    assert (wf.state.values, wf.state.indexes) == ([2, 4, 6, 8, 10], [0, 1, 2, 3, 4])
    # start + 2 batch checkpoints (the last batch is part of the step's own commit) + the step
    assert sqlite_store.commit_count - before == 4
    assert not (await sqlite_store.load_workflow(str(wf.id)))["context"].get(
        "steps"
    )  # progress cleared


async def test_empty_fan_out_completes_with_no_results(engine):
    """Iterating over an empty list completes the step and merges nothing."""
    wf = await run(engine, "Double", {"items": []})
    assert wf.status == "COMPLETED" and "values" not in wf.state


async def test_a_failing_task_fails_the_step_naming_the_task_and_its_error(engine):
    """Without allow_partial_success one raising task fails the workflow with the task's name and error."""
    wf = await run(engine, "Cursed", {"items": [1, 2, 3]})
    assert wf.status == "FAILED"
    assert "1 of 3 parallel tasks failed" in wf.error
    assert "Fan[2]: ValueError: item 3 is cursed" in wf.error


async def test_retry_reruns_only_the_tasks_that_did_not_succeed(engine, tmp_path):
    """After a failed fan-out, engine.retry runs the failed task again but not the ones that succeeded."""
    fix = tmp_path / "fixed"
    wf = await run(
        engine, "Cursed", {"items": [1, 2, 3], "fix_file": str(fix), "marker_dir": str(tmp_path)}
    )
    assert wf.status == "FAILED"
    fix.touch()
    wf = await engine.retry(wf.id)
    assert wf.status == "COMPLETED" and wf.state.values == [1, 2, 3]
    runs = [line.split()[0] for line in (tmp_path / "markers.log").read_text().splitlines()]
    assert runs == ["item-0", "item-1", "item-2", "item-2"]


async def test_a_failing_static_task_fails_the_step(engine):
    """A raising static task fails the step when partial success is not allowed."""
    wf = await run(engine, "StaticStrict", {})
    assert wf.status == "FAILED" and "broken: RuntimeError: sensor offline" in wf.error


async def test_partial_success_keeps_good_results_and_audits_the_errors(engine):
    """With allow_partial_success the step completes with the good results and the audit names the errors."""
    wf = await run(engine, "CursedPartial", {"items": [1, 3, 5]})
    assert wf.status == "COMPLETED"
    assert wf.state.values == [1, 5]
    audit = [a for a in await engine.get_audit_log(wf.id) if a.event_type == "STEP_COMPLETED"]
    assert audit[0].details["failed_tasks"] == [
        {"name": "Fan[1]", "error": "ValueError: item 3 is cursed"}
    ]
    assert audit[0].details["succeeded"] == 2


async def test_static_partial_success_leaves_the_failed_task_out(engine):
    """A failed static task merges nothing when partial success is allowed."""
    wf = await run(engine, "StaticPartial", {})
    assert wf.status == "COMPLETED" and wf.state.a == 1


async def test_partial_success_with_every_task_failed_fails_the_step(engine):
    """allow_partial_success does not turn a step whose every task failed into a success."""
    wf = await run(engine, "CursedPartial", {"items": [3, 3]})
    assert wf.status == "FAILED" and "2 of 2 parallel tasks failed" in wf.error


async def test_merge_function_gets_every_task_entry(engine):
    """A merge_function receives the task entries and its dict is what merges into the state."""
    wf = await run(engine, "Summed", {"items": [1, 2, 3]})
    assert wf.status == "COMPLETED"
    assert wf.state.total == 12 and "values" not in wf.state


async def test_a_task_returning_a_non_dict_is_a_failed_task(engine):
    """A task result that is not a dict fails that task, and so the step, with a clear message."""
    wf = await run(engine, "NotADict", {"items": [1]})
    assert wf.status == "FAILED" and "must return a dict" in wf.error


async def test_iterate_over_that_is_not_a_list_fails_the_step(engine):
    """iterate_over must give a list; a number fails the step and says what it got."""
    wf = await run(engine, "Scalar", {"count": 3})
    assert wf.status == "FAILED" and "gave a int, not a list" in wf.error


async def test_timeout_bounds_the_whole_fan_out(engine):
    """timeout_seconds fails the step when the tasks take longer, without waiting for them."""
    started = time.monotonic()
    wf = await run(engine, "Slow", {"items": [1.0, 1.0, 1.0]})
    assert wf.status == "FAILED" and "parallel tasks timed out after 0.3 s" in wf.error
    assert time.monotonic() - started < 2.0  # the tasks alone would take 3 s


async def test_thread_pool_runs_tasks_concurrently(sqlite_store):
    """With ThreadPoolExecutionProvider four 0.5 s tasks finish together, well under their 2 s sum."""
    registry = registry_of(fan_out("Slow", "sleepy"))
    async with WorkflowEngine(
        sqlite_store, registry, execution=ThreadPoolExecutionProvider(max_workers=4)
    ) as eng:
        started = time.monotonic()
        wf = await run(eng, "Slow", {"items": [0.5, 0.5, 0.5, 0.5]})
        elapsed = time.monotonic() - started
    assert wf.status == "COMPLETED" and len(wf.state.slept) == 4
    assert elapsed < 1.5

"""LOOP steps on a real SQLite file: ITERATE and WHILE, body steps, limits, failures, durable progress."""

from __future__ import annotations

import pytest
from steps_fixtures.harness import registry_of

from ruvon_edge import WorkflowEngine

ITERATE = """
workflow_type: Iterate
steps:
  - name: Sum
    type: LOOP
    mode: ITERATE
    iterate_over: state.items
    max_iterations: 5
    on_max_iterations: fail
    function: steps_fixtures.steps.add_item
  - name: After
    function: steps_fixtures.steps.double_total
"""

BODY = """
workflow_type: Body
steps:
  - name: Sum
    type: LOOP
    mode: ITERATE
    iterate_over: state.items
    loop_body:
      - {name: Add, function: steps_fixtures.steps.add_item}
      - {name: Double, function: steps_fixtures.steps.double_total}
"""

WHILE = """
workflow_type: While
steps:
  - name: Count
    type: LOOP
    mode: WHILE
    while_condition: "state.n < state.limit"
    max_iterations: 10
    on_max_iterations: fail
    loop_body:
      - {name: Up, function: steps_fixtures.steps.count_up}
"""

EXPLODE = """
workflow_type: Explode
steps:
  - name: Sum
    type: LOOP
    mode: ITERATE
    iterate_over: state.items
    function: steps_fixtures.steps.explode_at_two
"""

SHRINK = """
workflow_type: Shrink
steps:
  - name: Sum
    type: LOOP
    mode: ITERATE
    iterate_over: state.items
    function: steps_fixtures.steps.shrink_items
"""


@pytest.fixture
async def engine(sqlite_store):
    async with WorkflowEngine(
        sqlite_store,
        registry_of(
            ITERATE,
            BODY,
            WHILE,
            EXPLODE,
            SHRINK,
            ITERATE.replace("Iterate", "IterateStop").replace("    on_max_iterations: fail\n", ""),
            WHILE.replace("While", "WhileStop").replace("    on_max_iterations: fail\n", ""),
        ),
    ) as eng:
        yield eng


async def run(engine, workflow_type, data):
    return await engine.run((await engine.start_workflow(workflow_type, data)).id)


async def test_iterate_runs_the_function_once_per_item_with_loop_item_and_index(engine):
    """ITERATE calls the function per item with context.loop_item/loop_index, then the workflow moves on."""
    wf = await run(engine, "Iterate", {"items": [1, 2, 3], "total": 0, "seen": []})
    assert wf.status == "COMPLETED"
    assert wf.state.seen == [0, 1, 2]
    assert wf.state.total == 12  # (1+2+3) doubled by the next step


async def test_loop_body_steps_run_in_order_each_iteration(engine):
    """Each iteration runs the loop_body steps in order, each seeing the previous one's result."""
    wf = await run(engine, "Body", {"items": [1, 2], "total": 0, "seen": []})
    assert wf.status == "COMPLETED"
    assert wf.state.total == ((0 + 1) * 2 + 2) * 2


async def test_more_items_than_max_iterations_is_an_error_not_a_truncation(engine):
    """Six items with max_iterations 5 fail the step before any iteration runs."""
    wf = await run(engine, "Iterate", {"items": [1, 2, 3, 4, 5, 6], "total": 0, "seen": []})
    assert wf.status == "FAILED"
    assert "iterate_over has 6 items, more than max_iterations=5" in wf.error
    assert wf.state.seen == [] and wf.state.total == 0


async def test_while_repeats_until_the_condition_is_false(engine):
    """WHILE runs the body while the condition holds."""
    wf = await run(engine, "While", {"n": 0, "limit": 4})
    assert (wf.status, wf.state.n) == ("COMPLETED", 4)


async def test_while_exceeding_max_iterations_fails(engine):
    """A WHILE condition still true after max_iterations fails the step with the limit in the message."""
    wf = await run(engine, "While", {"n": 0, "limit": 50})
    assert wf.status == "FAILED"
    assert "while_condition still true after max_iterations=10" in wf.error
    assert wf.state.n == 10  # the finished iterations are kept, not rolled back


async def test_a_failing_iteration_fails_the_step_keeping_finished_iterations(engine):
    """An iteration that raises names itself in the error; the state holds the iterations before it."""
    wf = await run(engine, "Explode", {"items": [1, 2, 3, 4], "total": 0})
    assert wf.status == "FAILED"
    assert "iteration 2, step 'Sum': RuntimeError: bad item" in wf.error
    assert wf.state.total == 3


async def test_retry_after_a_failed_iteration_resumes_there(engine, tmp_path):
    """engine.retry continues with the failed iteration; the finished ones do not run again."""
    fix = tmp_path / "fixed"
    data = {"items": [1, 2, 3, 4], "total": 0, "fix_file": str(fix), "marker_dir": str(tmp_path)}
    wf = await run(engine, "Explode", data)
    assert wf.status == "FAILED"
    fix.touch()
    wf = await engine.retry(wf.id)
    assert (wf.status, wf.state.total) == ("COMPLETED", 10)
    runs = [line.split()[0] for line in (tmp_path / "markers.log").read_text().splitlines()]
    assert runs == ["iter-0", "iter-1", "iter-2", "iter-2", "iter-3"]


async def test_iterate_keeps_its_items_when_the_body_changes_the_list(engine):
    """The list is read once: a body that empties state.items still sees every original item."""
    wf = await run(engine, "Shrink", {"items": [1, 2, 3], "total": 0})
    assert wf.status == "COMPLETED" and wf.state.total == 6 and wf.state.items == []


async def test_progress_is_committed_after_every_iteration(engine, sqlite_store):
    """Each iteration but the last commits its progress, so a crash never repeats a finished one."""
    before = sqlite_store.commit_count
    wf = await run(engine, "Iterate", {"items": [1, 2, 3, 4], "total": 0, "seen": []})
    assert wf.status == "COMPLETED"
    # start + 3 iteration checkpoints + Sum + After
    assert sqlite_store.commit_count - before == 6


async def test_by_default_a_loop_stops_at_max_iterations_with_an_audit_row(engine):
    """on_max_iterations defaults to stop: the first max_iterations items run, the step completes, LOOP_LIMIT_REACHED is audited."""
    wf = await run(engine, "IterateStop", {"items": [1, 2, 3, 4, 5, 6], "total": 0, "seen": []})
    assert wf.status == "COMPLETED" and wf.state.seen == [0, 1, 2, 3, 4]
    [limit] = [a for a in await engine.get_audit_log(wf.id) if a.event_type == "LOOP_LIMIT_REACHED"]
    assert limit.step_name == "Sum" and "1 items not processed" in limit.details["reason"]


async def test_a_while_loop_stops_at_max_iterations_by_default(engine):
    """A WHILE condition still true at the limit completes the step, audited as LOOP_LIMIT_REACHED."""
    wf = await run(engine, "WhileStop", {"n": 0, "limit": 50})
    assert (wf.status, wf.state.n) == ("COMPLETED", 10)
    events = [a.event_type for a in await engine.get_audit_log(wf.id)]
    assert "LOOP_LIMIT_REACHED" in events

"""Core engine behaviour on a real SQLite file: steps, routes, humans, retries, saga, idempotency."""

from __future__ import annotations

import asyncio
import time

import pytest

from ruvon_edge import (
    InvalidInputError,
    InvalidTransitionError,
    WorkflowEngine,
    WorkflowNotFoundError,
    WorkflowRegistry,
)

ORDER = """
workflow_type: Order
workflow_version: "1.0"
initial_state_model_path: core_app.models.OrderState
saga_mode: true
steps:
  - name: Reserve
    function: core_app.steps.reserve
    compensate_function: core_app.steps.release
  - name: Route
    type: DECISION
    function: core_app.steps.score
    routes:
      - {condition: "state.amount > 50 and state.country in ['DE', 'FR']", next_step: Review}
      - {default: Ship}
  - name: Review
    type: HUMAN_IN_LOOP
    input_model: core_app.models.ReviewInput
    function: core_app.steps.apply_review
  - name: Ship
    function: core_app.steps.ship
"""

SAGA = """
workflow_type: Saga
initial_state_model_path: core_app.models.OrderState
saga_mode: true
steps:
  - name: Reserve
    function: core_app.steps.reserve
    compensate_function: core_app.steps.release
  - name: Jump
    function: core_app.steps.jump_to_ship
  - name: Skipped
    function: core_app.steps.ship
  - name: Ship
    function: core_app.steps.charge
    compensate_function: {refund}
  - name: Boom
    function: core_app.steps.explode
"""


def registry_with(*texts: str) -> WorkflowRegistry:
    registry = WorkflowRegistry(allowed_modules=["core_app"])
    for text in texts:
        registry.register_yaml(text)
    return registry


def single_step(name: str, function: str, extra: str = "") -> str:
    return f"""
workflow_type: {name}
initial_state_model_path: core_app.models.OrderState
steps:
  - name: Only
    function: {function}
{extra}
"""


@pytest.fixture
async def engine(sqlite_store):
    registry = registry_with(ORDER, SAGA.format(refund="core_app.steps.refund"))
    async with WorkflowEngine(persistence=sqlite_store, registry=registry) as eng:
        yield eng


async def test_small_amount_routes_to_ship_and_completes(engine):
    """A cheap order skips review: the default route leads to Ship and the workflow completes."""
    wf = await engine.start_workflow("Order", {"order_id": "A1", "amount": 20})
    wf = await engine.run(wf.id)
    assert wf.status == "COMPLETED"
    assert wf.state.trail == ["reserve", "score", "ship"]
    assert wf.state.reserved is True and wf.current_step is None


async def test_condition_with_and_in_routes_to_human_review(engine):
    """`amount > 50 and country in [...]` sends the order to a human, who approves it."""
    wf = await engine.start_workflow("Order", {"order_id": "A2", "amount": 80, "country": "FR"})
    wf = await engine.run(wf.id)
    assert (wf.status, wf.current_step) == ("WAITING_HUMAN", "Review")
    wf = await engine.resume(wf.id, {"approved": True, "reviewer": "ana"})
    assert wf.status == "COMPLETED"
    assert wf.state.approved is True and wf.state.reviewer == "ana"
    assert wf.state.trail == ["reserve", "score", "review", "ship"]


async def test_invalid_human_input_is_refused_and_changes_nothing(engine):
    """Input that fails the input model raises InvalidInputError and the workflow stays WAITING_HUMAN."""
    wf = await engine.run(
        (await engine.start_workflow("Order", {"order_id": "A3", "amount": 99})).id
    )
    before = (await engine.get_workflow(wf.id)).version
    with pytest.raises(InvalidInputError, match="reviewer"):
        await engine.resume(wf.id, {"approved": "maybe"})
    after = await engine.get_workflow(wf.id)
    assert after.status == "WAITING_HUMAN" and after.version == before
    assert after.state.approved is None


async def test_resume_of_a_running_workflow_is_refused(engine):
    """Only a waiting workflow can be resumed."""
    wf = await engine.start_workflow("Order", {"order_id": "A4", "amount": 1})
    with pytest.raises(InvalidTransitionError, match="ACTIVE"):
        await engine.resume(wf.id, {"approved": True, "reviewer": "x"})


async def test_same_idempotency_key_returns_the_existing_workflow(engine):
    """A second start with the same key returns the first workflow and creates nothing."""
    first = await engine.start_workflow(
        "Order", {"order_id": "A5", "amount": 1}, idempotency_key="A5"
    )
    await engine.run(first.id)
    second = await engine.start_workflow(
        "Order", {"order_id": "other", "amount": 999}, idempotency_key="A5"
    )
    assert second.id == first.id
    assert second.status == "COMPLETED" and second.state.order_id == "A5"
    assert len(await engine.list_workflows(workflow_type="Order")) == 1


async def test_saga_compensates_in_reverse_including_jumped_to_steps(engine):
    """On failure, compensations run newest first, including a step reached by a jump; status FAILED_ROLLED_BACK."""
    wf = await engine.run((await engine.start_workflow("Saga", {"order_id": "S1"})).id)
    assert wf.status == "FAILED_ROLLED_BACK"
    assert wf.state.trail == ["reserve", "charge"]
    assert wf.state.released == ["charge", "reserve"]
    assert "card declined" in wf.error
    events = [a.event_type for a in await engine.get_audit_log(wf.id)]
    assert events.count("COMPENSATION_COMPLETED") == 2
    assert events[-1] == "WORKFLOW_ROLLED_BACK"


async def test_a_failing_compensation_does_not_stop_the_others(sqlite_store):
    """One broken compensation is recorded as failed and the earlier ones still run."""
    registry = registry_with(SAGA.format(refund="core_app.steps.refund_broken"))
    async with WorkflowEngine(persistence=sqlite_store, registry=registry) as engine:
        wf = await engine.run((await engine.start_workflow("Saga", {"order_id": "S2"})).id)
        assert wf.status == "FAILED_ROLLED_BACK"
        assert wf.state.released == ["reserve"]
        audit = await engine.get_audit_log(wf.id)
        failed = [a for a in audit if a.event_type == "COMPENSATION_FAILED"]
        assert len(failed) == 1 and failed[0].step_name == "Ship"
        assert "refund service down" in failed[0].details["error"]


async def test_without_saga_a_failure_is_failed_and_retry_resumes_at_the_failed_step(
    sqlite_store, monkeypatch
):
    """A failed step leaves FAILED at that step; retry re-runs only that step once it is fixed."""
    text = """
workflow_type: Fixable
initial_state_model_path: core_app.models.OrderState
steps:
  - {name: Reserve, function: core_app.steps.reserve}
  - {name: Fix, function: core_app.steps.fail_unless_env}
  - {name: Ship, function: core_app.steps.ship}
"""
    async with WorkflowEngine(persistence=sqlite_store, registry=registry_with(text)) as engine:
        wf = await engine.run((await engine.start_workflow("Fixable", {"order_id": "F1"})).id)
        assert (wf.status, wf.current_step) == ("FAILED", "Fix")
        assert "not fixed yet" in wf.error
        monkeypatch.setenv("RUVON_TEST_FIXED", "1")
        wf = await engine.retry(wf.id)
        assert wf.status == "COMPLETED" and wf.error is None
        assert wf.state.trail == ["reserve", "fixed", "ship"]


async def test_retry_policy_retries_with_backoff_then_succeeds(sqlite_store):
    """A step with retry.max_attempts=3 survives two failures; the attempts are recorded."""
    text = single_step(
        "Flaky", "core_app.steps.flaky", "    retry: {max_attempts: 3, backoff_seconds: 0.05}"
    )
    async with WorkflowEngine(persistence=sqlite_store, registry=registry_with(text)) as engine:
        started = time.monotonic()
        wf = await engine.run((await engine.start_workflow("Flaky", {"order_id": "R1"})).id)
        assert wf.status == "COMPLETED" and wf.state.attempts == 3
        assert time.monotonic() - started >= 0.05 + 0.1  # two backoffs: 0.05 then 0.1
        step_rows = [
            a for a in await engine.get_audit_log(wf.id) if a.event_type == "STEP_COMPLETED"
        ]
        assert step_rows[0].details["attempts"] == 3


async def test_timeout_fails_the_step_with_a_clear_error(sqlite_store):
    """A step running past timeout_seconds fails the workflow, naming the timeout."""
    text = single_step("Slow", "core_app.steps.slow_async", "    timeout_seconds: 0.2")
    async with WorkflowEngine(persistence=sqlite_store, registry=registry_with(text)) as engine:
        wf = await engine.run((await engine.start_workflow("Slow", {"order_id": "T1"})).id)
        assert wf.status == "FAILED"
        assert "timed out after 0.2 s" in wf.error


async def test_slow_sync_step_does_not_block_other_workflows(sqlite_store):
    """While one workflow sleeps in a sync step (a thread), another completes many steps."""
    slow = single_step("SlowSync", "core_app.steps.slow_sync", "    timeout_seconds: 2.5")
    fast = single_step("Fast", "core_app.steps.ship")
    async with WorkflowEngine(
        persistence=sqlite_store, registry=registry_with(slow, fast)
    ) as engine:
        slow_wf = await engine.start_workflow("SlowSync", {"order_id": "slow"})
        slow_task = asyncio.create_task(engine.run(slow_wf.id))
        await asyncio.sleep(0)  # the slow step is now in its thread
        for i in range(20):
            wf = await engine.run((await engine.start_workflow("Fast", {"order_id": f"f{i}"})).id)
            assert wf.status == "COMPLETED"
        assert not slow_task.done()  # all 20 finished while the slow step was still running
        assert (await slow_task).status == "FAILED"


async def test_async_def_steps_run_on_the_loop(sqlite_store):
    """`async def` step functions are awaited and their results merged."""
    text = single_step("Async", "core_app.steps.async_step")
    async with WorkflowEngine(persistence=sqlite_store, registry=registry_with(text)) as engine:
        wf = await engine.run((await engine.start_workflow("Async", {"order_id": "X"})).id)
        assert (
            wf.status == "COMPLETED" and wf.state.trail == ["async"] and wf.state.tags == ["async"]
        )


async def test_pause_directive_waits_and_resume_completes_it_and_runs_the_next_step_with_input(
    sqlite_store,
):
    """WorkflowPauseDirective parks the workflow in WAITING_HUMAN; resume completes that step and hands the input to the next (contract §2a)."""
    text = single_step(
        "Docs",
        "core_app.steps.pause_for_docs",
        "  - name: Record\n    function: core_app.steps.pause_for_docs\n",
    )
    async with WorkflowEngine(persistence=sqlite_store, registry=registry_with(text)) as engine:
        wf = await engine.run((await engine.start_workflow("Docs", {"order_id": "P"})).id)
        assert (wf.status, wf.current_step) == ("WAITING_HUMAN", "Only")
        wf = await engine.resume(wf.id, {"docs": "passport"})
        assert wf.status == "COMPLETED" and wf.state.profile == {"docs": "passport"}
        steps = [
            e.step_name
            for e in await engine.get_audit_log(wf.id)
            if e.event_type == "STEP_COMPLETED"
        ]
        assert steps == ["Only", "Record"]


async def test_except_exception_in_user_code_cannot_swallow_a_directive(sqlite_store):
    """Directives are BaseException: a step's `except Exception` does not catch the jump."""
    text = """
workflow_type: Swallow
initial_state_model_path: core_app.models.OrderState
steps:
  - {name: First, function: core_app.steps.swallow_everything}
  - {name: Middle, function: core_app.steps.reserve}
  - {name: Ship, function: core_app.steps.ship}
"""
    async with WorkflowEngine(persistence=sqlite_store, registry=registry_with(text)) as engine:
        wf = await engine.run((await engine.start_workflow("Swallow", {"order_id": "J"})).id)
        assert wf.status == "COMPLETED"
        assert wf.state.route is None and wf.state.trail == ["ship"]


async def test_a_non_dict_result_fails_the_step_clearly(sqlite_store):
    """A step returning a string fails with a message saying what it must return."""
    async with WorkflowEngine(
        persistence=sqlite_store,
        registry=registry_with(single_step("Text", "core_app.steps.returns_text")),
    ) as engine:
        wf = await engine.run((await engine.start_workflow("Text", {"order_id": "N"})).id)
        assert wf.status == "FAILED" and "must return a dict" in wf.error


async def test_cancel_stops_a_waiting_workflow_and_cannot_cancel_twice(engine):
    """Cancelling a waiting workflow makes it CANCELLED; cancelling again is refused."""
    wf = await engine.run(
        (await engine.start_workflow("Order", {"order_id": "C", "amount": 90})).id
    )
    wf = await engine.cancel(wf.id)
    assert wf.status == "CANCELLED"
    with pytest.raises(InvalidTransitionError):
        await engine.cancel(wf.id)


async def test_unknown_workflow_id_raises_not_found_also_as_value_error(engine):
    """get_workflow of an unknown id raises WorkflowNotFoundError, catchable as ValueError."""
    with pytest.raises(WorkflowNotFoundError):
        await engine.get_workflow("00000000-0000-0000-0000-000000000000")
    with pytest.raises(ValueError):
        await engine.run("00000000-0000-0000-0000-000000000000")


async def test_running_instance_keeps_its_definition_after_reregistration(sqlite_store):
    """Re-registering a type with other steps does not change an instance that already started."""
    v1 = """
workflow_type: Evolving
initial_state_model_path: core_app.models.OrderState
steps:
  - {name: A, type: HUMAN_IN_LOOP}
  - {name: B, function: core_app.steps.ship}
"""
    registry = registry_with(v1)
    async with WorkflowEngine(persistence=sqlite_store, registry=registry) as engine:
        old = await engine.run((await engine.start_workflow("Evolving", {"order_id": "old"})).id)
        registry.register_yaml(
            v1.replace("core_app.steps.ship", "core_app.steps.charge").replace(
                "{name: A, type: HUMAN_IN_LOOP}\n",
                "{name: A, type: HUMAN_IN_LOOP}\n  - {name: C, function: core_app.steps.reserve}\n",
            )
        )
    # a fresh engine (empty caches) must read the stored snapshot, not the registry
    async with WorkflowEngine(persistence=sqlite_store, registry=registry) as engine:
        wf = await engine.resume(old.id, {})
        assert wf.status == "COMPLETED" and wf.state.trail == ["ship"]
        new = await engine.run((await engine.start_workflow("Evolving", {"order_id": "new"})).id)
        new = await engine.resume(new.id, {})
        assert new.state.trail == ["reserve", "charge"]


async def test_audit_has_a_row_per_step_and_status_change_and_metrics_per_step(
    engine, sqlite_store
):
    """Every step and status change leaves an audit row; every step leaves a duration metric."""
    wf = await engine.run(
        (await engine.start_workflow("Order", {"order_id": "AU", "amount": 5})).id
    )
    events = [(a.event_type, a.step_name) for a in await engine.get_audit_log(wf.id)]
    assert events == [
        ("WORKFLOW_STARTED", None),
        ("STEP_COMPLETED", "Reserve"),
        ("STEP_COMPLETED", "Route"),
        ("STEP_COMPLETED", "Ship"),
        ("WORKFLOW_COMPLETED", "Ship"),
    ]
    metrics = await sqlite_store.get_metrics(str(wf.id))
    assert [m["step_name"] for m in metrics] == ["Reserve", "Route", "Ship"]
    assert all(m["metric_name"] == "step_duration_ms" and m["metric_value"] >= 0 for m in metrics)


async def test_one_commit_per_step(sqlite_store):
    """A 3-step workflow costs one commit to start and one per step: 4 in all."""
    text = """
workflow_type: Three
initial_state_model_path: core_app.models.OrderState
steps:
  - {name: A, function: core_app.steps.reserve}
  - {name: B, function: core_app.steps.charge}
  - {name: C, function: core_app.steps.ship}
"""
    async with WorkflowEngine(persistence=sqlite_store, registry=registry_with(text)) as engine:
        before = sqlite_store.commit_count
        wf = await engine.run((await engine.start_workflow("Three", {"order_id": "O"})).id)
        assert wf.status == "COMPLETED"
        assert sqlite_store.commit_count - before == 4


async def test_next_step_advances_exactly_one_step(engine):
    """wf.next_step() runs one step at a time, as in the reference SDK."""
    wf = await engine.start_workflow("Order", {"order_id": "NS", "amount": 5})
    wf = await wf.next_step()
    assert (wf.status, wf.current_step, wf.state.trail) == ("ACTIVE", "Route", ["reserve"])
    wf = await wf.next_step()
    assert wf.current_step == "Ship"


@pytest.mark.parametrize(
    ("strategy", "conflict", "expected_profile", "expected_tags", "error"),
    [
        ("shallow", "overwrite", {"b": 2, "nested": {"y": 2}}, ["b"], None),
        ("deep", "overwrite", {"a": 1, "b": 2, "nested": {"x": 1, "y": 2}}, ["b"], None),
        ("append", "overwrite", {"b": 2, "nested": {"y": 2}}, ["a", "b"], None),
        ("shallow", "keep", {"a": 1, "nested": {"x": 1}}, ["a"], None),
        ("shallow", "error", None, None, "conflicts with the existing value"),
    ],
)
async def test_merge_strategies_and_conflicts(
    sqlite_store, strategy, conflict, expected_profile, expected_tags, error
):
    """The second step's result merges per merge_strategy; conflicts overwrite, keep, or fail the step."""
    text = f"""
workflow_type: Merge
initial_state_model_path: core_app.models.OrderState
steps:
  - {{name: A, function: core_app.steps.profile_a}}
  - {{name: B, function: core_app.steps.profile_b, merge_strategy: {strategy}, merge_conflict: {conflict}}}
"""
    async with WorkflowEngine(persistence=sqlite_store, registry=registry_with(text)) as engine:
        wf = await engine.run((await engine.start_workflow("Merge", {"order_id": "M"})).id)
        if error:
            assert wf.status == "FAILED" and error in wf.error
            assert wf.state.profile == {"a": 1, "nested": {"x": 1}}
        else:
            assert wf.status == "COMPLETED"
            assert wf.state.profile == expected_profile and wf.state.tags == expected_tags

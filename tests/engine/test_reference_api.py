"""The reference SDK's step API on a real SQLite file: directives, context fields, next_step, saga switch, injection (contract §2a)."""

from __future__ import annotations

import pytest

from ruvon_edge import WorkflowEngine, WorkflowRegistry
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

M = "refapi_app.steps"
JUMP = f"""
workflow_type: Jump
initial_state_model: {M}.FlowState
steps:
  - {{name: Mark, type: STANDARD, function: {M}.mark_and_jump}}
  - {{name: Skipped, type: STANDARD, function: {M}.never}}
  - {{name: Finish, type: STANDARD, function: {M}.finish}}
"""
PAUSE = f"""
workflow_type: Pause
initial_state_model: {M}.FlowState
steps:
  - {{name: Ask, type: STANDARD, function: {M}.pause_for_approval}}
  - {{name: Record, type: STANDARD, function: {M}.record_approval, input_model: {M}.ApprovalInput}}
"""
INJECT = f"""
workflow_type: Inject
initial_state_model: {M}.FlowState
steps:
  - name: Evaluate_Risk
    type: STANDARD
    function: {M}.score
    dynamic_injection:
      rules:
        - condition_key: "risk_level"
          value_match: "high"
          action: "INSERT_AFTER_CURRENT"
          steps_to_insert:
            - {{name: Manual_Review, type: STANDARD, function: {M}.review}}
  - {{name: Ship, type: STANDARD, function: {M}.ship}}
"""
PLAIN = f"""
workflow_type: Plain
initial_state_model: builtins.dict
automate_start: true
steps:
  - {{name: Count, type: STANDARD, function: {M}.dict_step}}
  - {{name: Again, type: STANDARD, function: {M}.dict_step}}
"""
SAGA = f"""
workflow_type: SagaLater
initial_state_model: {M}.FlowState
steps:
  - {{name: Reserve, type: COMPENSATABLE, function: {M}.review, compensate_function: {M}.undo}}
  - {{name: Charge, type: STANDARD, function: {M}.explode}}
"""
PARALLEL = f"""
workflow_type: Par
initial_state_model: {M}.FlowState
steps:
  - name: Both
    type: PARALLEL
    tasks:
      - {{name: flag, function_path: {M}.task_flag}}
    merge_strategy: DEEP
"""
ASYNC = f"""
workflow_type: AsyncMap
initial_state_model: {M}.FlowState
steps:
  - {{name: Later, type: ASYNC, function: {M}.async_mapping}}
"""
BOGUS = PARALLEL.replace("Par\n", "Bogus\n").replace("task_flag", "task_bogus")


def registry() -> WorkflowRegistry:
    reg = WorkflowRegistry(allowed_modules=["refapi_app"])
    for text in (JUMP, PAUSE, INJECT, PLAIN, SAGA, PARALLEL, BOGUS, ASYNC):
        reg.register_yaml(text)
    return reg


@pytest.fixture
async def engine(sqlite_store):
    async with WorkflowEngine(persistence=sqlite_store, registry=registry()) as eng:
        yield eng


async def test_keyword_jump_keeps_in_place_changes_and_merges_its_result(engine):
    """WorkflowJumpDirective(target_step_name=, result=) skips ahead; state changed before raising is kept."""
    wf = await engine.run((await engine.start_workflow("Jump", {})).id)
    assert wf.status == "COMPLETED"
    assert wf.state.trail == ["mark", "finish"] and wf.state.notes == "jumped"
    assert wf.state.previous == {"notes": "jumped"}  # context.previous_step_result


async def test_resume_after_a_directive_pause_runs_the_next_step_with_validated_input(engine):
    """A STANDARD step's pause keeps its result and in-place change; resume hands the input (validated) to the next step."""
    wf = await engine.run((await engine.start_workflow("Pause", {})).id)
    assert (wf.status, wf.state.trail, wf.state.notes) == ("WAITING_HUMAN", ["asked"], "waiting")
    with pytest.raises(Exception, match="input does not fit ApprovalInput"):
        await engine.resume(wf.id, {"approved": "maybe"})
    wf = await engine.resume(wf.id, {"approved": True, "reviewer": "ana"})
    assert wf.status == "COMPLETED" and wf.state.approved_by == "ana"
    assert wf.state.seen_input == {"approved": True, "reviewer": "ana"}


async def test_next_step_updates_the_workflow_object_it_is_called_on(engine):
    """The docs' `while wf.status == "ACTIVE": await wf.next_step()` loop advances the same object."""
    wf = await engine.start_workflow("Jump", {})
    seen = []
    while wf.status == "ACTIVE":
        returned = await wf.next_step()
        assert returned is wf
        seen.append(wf.current_step)
    assert wf.status == "COMPLETED" and seen == ["Finish", None]


async def test_a_dict_state_works_as_mapping_and_automate_start_runs_the_first_step(engine):
    """initial_state_model: builtins.dict gives state["x"] and .get; automate_start runs step one inside start."""
    wf = await engine.start_workflow("Plain", {})
    assert wf.current_step == "Again" and wf.state["counter"] == 1
    wf = await engine.run(wf.id)
    assert wf.status == "COMPLETED" and wf.state.doubled == 4 and wf.state["has_counter"] is True


async def test_enable_saga_mode_on_one_instance_compensates_it(engine):
    """Workflow.enable_saga_mode() (awaited or not) makes that instance roll back on failure."""
    wf = await engine.start_workflow("SagaLater", {})
    wf.enable_saga_mode()  # the saga tutorial calls it without await
    while wf.status == "ACTIVE":
        await wf.next_step()
    assert wf.status == "FAILED_ROLLED_BACK" and wf.state.notes == "undone"
    other = await engine.start_workflow("SagaLater", {})
    assert (await engine.run(other.id)).status == "FAILED"


async def test_injected_steps_join_the_instance_snapshot_and_survive_a_restart(engine, db_path):
    """A matching rule inserts its step after the current one; a new engine on the same file runs it."""
    wf = await engine.start_workflow("Inject", {"amount": 500})
    wf = await engine.next_step(wf.id)
    assert wf.current_step == "Manual_Review"
    store = SQLitePersistenceProvider(str(db_path))
    async with WorkflowEngine(persistence=store, registry=registry()) as fresh:
        wf = await fresh.run(wf.id)
        assert wf.status == "COMPLETED" and wf.state.trail == ["review", "ship"]
        events = [a.event_type for a in await fresh.get_audit_log(wf.id)]
        assert "STEPS_INJECTED" in events
    low = await engine.run((await engine.start_workflow("Inject", {"amount": 5})).id)
    assert low.status == "COMPLETED" and low.state.trail == ["ship"]


async def test_parallel_tasks_read_state_as_object_and_mapping(engine):
    """A task's state answers state["x"] and state.x alike; its result merges into the top level."""
    wf = await engine.run((await engine.start_workflow("Par", {"amount": 3})).id)
    assert wf.status == "COMPLETED" and wf.state.flags == {"a": True}


async def test_a_parallel_result_key_the_model_does_not_declare_fails_the_step(engine):
    """An undeclared key is an error at the PARALLEL step, never silently dropped."""
    wf = await engine.run((await engine.start_workflow("Bogus", {})).id)
    assert wf.status == "FAILED" and "'not_declared', which FlowState does not declare" in wf.error


async def test_async_task_functions_read_state_as_mapping(engine, sqlite_store):
    """An ASYNC task (claimed as serve would) gets its typed state with state["x"], .get and `in` too."""
    wf = await engine.run((await engine.start_workflow("AsyncMap", {"amount": 7})).id)
    assert wf.status == "PENDING_ASYNC"
    task = await sqlite_store.claim_next_task("worker-1")
    wf = await engine.run_async_task(task)
    assert wf.status == "COMPLETED" and wf.state.notes == "7.0/low/True"


async def test_awaiting_enable_saga_mode_stores_it_at_once(engine):
    """`await wf.enable_saga_mode()` commits the switch (audited) before any step runs."""
    wf = await engine.start_workflow("SagaLater", {})
    await wf.enable_saga_mode()
    assert "SAGA_MODE_ENABLED" in [a.event_type for a in await engine.get_audit_log(wf.id)]
    assert (await engine.run(wf.id)).status == "FAILED_ROLLED_BACK"

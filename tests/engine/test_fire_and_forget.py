"""FIRE_AND_FORGET steps on a real SQLite file: independent workflows that the caller never waits for."""

from __future__ import annotations

import asyncio

import pytest
from steps_fixtures.harness import RecordingObserver, registry_of

from ruvon_edge import WorkflowEngine
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

NOTE = """
workflow_type: Note
steps:
  - name: Write
    function: steps_fixtures.steps.note
"""

NOTE_FAILS = """
workflow_type: NoteFails
initial_state_model_path: steps_fixtures.models.ChildState
steps:
  - name: Write
    function: steps_fixtures.steps.child_explode
"""

NOTE_HUMAN = """
workflow_type: NoteHuman
steps:
  - name: Ask
    type: HUMAN_IN_LOOP
"""


def caller(name: str, target: str, value: str = "{{ state.value }}") -> str:
    return f"""
workflow_type: {name}
steps:
  - name: Spawn
    type: FIRE_AND_FORGET
    workflow_type: {target}
    initial_data: {{source: "{{{{ workflow_type }}}}", value: "{value}"}}
  - name: Done
    function: steps_fixtures.steps.parent_done
"""


DEFINITIONS = (
    NOTE,
    NOTE_FAILS,
    NOTE_HUMAN,
    caller("Caller", "Note"),
    caller("CallerOfFailure", "NoteFails"),
    caller("CallerOfHuman", "NoteHuman"),
    caller("CallerBadTemplate", "Note", value="{{ state.nope }}"),
)


class CrashOnStart(RecordingObserver):
    """Stops the coroutine (as a kill would) when the spawned workflow is announced, before it runs."""

    async def on_workflow_started(self, workflow_id, workflow_type):
        if workflow_type == "Note":
            raise asyncio.CancelledError


async def run(engine, workflow_type, data):
    return await engine.run((await engine.start_workflow(workflow_type, data)).id)


@pytest.fixture
async def engine(sqlite_store):
    async with WorkflowEngine(sqlite_store, registry_of(*DEFINITIONS)) as eng:
        yield eng


async def test_spawned_workflow_is_independent_and_runs_in_the_background(engine):
    """The caller completes with the new id recorded; the new workflow has no parent, knows its origin, and runs."""
    wf = await run(engine, "Caller", {"value": 7})
    assert wf.status == "COMPLETED" and wf.state.parent_done is True
    spawned_id = wf.state.spawned_workflows[0]["workflow_id"]
    await engine.join_background()
    spawned = await engine.get_workflow(spawned_id)
    assert spawned.status == "COMPLETED" and spawned.parent_id is None
    assert spawned.state.noted == "Caller:7"
    row = await engine.persistence.load_workflow(spawned_id)
    assert row["context"]["spawned_by"] == {"workflow_id": str(wf.id), "step": "Spawn"}


async def test_the_caller_does_not_wait_for_a_waiting_workflow(engine):
    """A spawned workflow that waits for a human leaves the caller COMPLETED."""
    wf = await run(engine, "CallerOfHuman", {"value": 1})
    await engine.join_background()
    assert wf.status == "COMPLETED"
    assert (
        await engine.get_workflow(wf.state.spawned_workflows[0]["workflow_id"])
    ).status == "WAITING_HUMAN"


async def test_a_failing_spawned_workflow_does_not_touch_the_caller(engine):
    """The spawned workflow fails on its own; the caller stays COMPLETED."""
    wf = await run(engine, "CallerOfFailure", {"value": 1})
    await engine.join_background()
    assert (await engine.get_workflow(wf.id)).status == "COMPLETED"
    assert (
        await engine.get_workflow(wf.state.spawned_workflows[0]["workflow_id"])
    ).status == "FAILED"


async def test_bad_template_fails_the_step_and_spawns_nothing(engine):
    """An undefined name in initial_data fails the caller and creates no workflow."""
    wf = await run(engine, "CallerBadTemplate", {"value": 1})
    assert wf.status == "FAILED" and "cannot render initial_data.value" in wf.error
    assert await engine.list_workflows(workflow_type="Note") == []


async def test_close_waits_for_background_runs(db_path):
    """Leaving the engine right after the caller returns still lets the spawned workflow finish."""
    async with WorkflowEngine(
        SQLitePersistenceProvider(str(db_path)), registry_of(*DEFINITIONS)
    ) as eng:
        wf = await run(eng, "Caller", {"value": 2})
    async with SQLitePersistenceProvider(str(db_path)) as store:
        row = await store.load_workflow(wf.state.spawned_workflows[0]["workflow_id"])
    assert row["status"] == "COMPLETED"


async def test_a_spawned_workflow_interrupted_before_running_is_resumable(sqlite_store):
    """Stopped right after the caller's commit, the spawned workflow exists (ACTIVE) and engine.run finishes it."""
    registry = registry_of(*DEFINITIONS)
    async with WorkflowEngine(sqlite_store, registry, observer=CrashOnStart()) as eng:
        wf = await eng.start_workflow("Caller", {"value": 3})
        with pytest.raises(asyncio.CancelledError):
            await eng.run(wf.id)
        [spawned] = await eng.list_workflows(workflow_type="Note")
        assert spawned.status == "ACTIVE"
        assert (
            await eng.get_workflow(wf.id)
        ).current_step == "Done"  # the Spawn step committed with it
    async with WorkflowEngine(sqlite_store, registry) as eng:
        assert (await eng.run(spawned.id)).status == "COMPLETED"
        assert (await eng.run(wf.id)).status == "COMPLETED"
        assert len(await eng.list_workflows(workflow_type="Note")) == 1

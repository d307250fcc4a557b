"""SUB_WORKFLOW steps and StartSubWorkflowDirective on a real SQLite file: children, failures, humans, crashes."""

from __future__ import annotations

import asyncio

import pytest
from steps_fixtures.harness import RecordingObserver, registry_of

from ruvon_edge import WorkflowEngine
from ruvon_edge.implementations.persistence.memory import MemoryPersistenceProvider

CHILD = """
workflow_type: Child
initial_state_model_path: steps_fixtures.models.ChildState
steps:
  - name: Work
    function: steps_fixtures.steps.child_work
"""

CHILD_FAILS = """
workflow_type: ChildFails
initial_state_model_path: steps_fixtures.models.ChildState
steps:
  - name: Work
    function: steps_fixtures.steps.child_explode
"""

CHILD_HUMAN = """
workflow_type: ChildHuman
initial_state_model_path: steps_fixtures.models.ChildState
steps:
  - name: Ask
    type: HUMAN_IN_LOOP
    input_model: steps_fixtures.models.ApproveInput
    function: steps_fixtures.steps.approve
  - name: Work
    function: steps_fixtures.steps.child_work
"""


def parent(
    name: str, child_type: str, *, saga: bool = False, value: str = "{{ state.value }}"
) -> str:
    return f"""
workflow_type: {name}
saga_mode: {str(saga).lower()}
steps:
  - name: Reserve
    function: steps_fixtures.steps.reserve
    compensate_function: steps_fixtures.steps.release
  - name: Spawn
    type: SUB_WORKFLOW
    workflow_type: {child_type}
    initial_data: {{value: "{value}", marker_dir: "{{{{ state.marker_dir | default('') }}}}"}}
  - name: After
    function: steps_fixtures.steps.after_child
"""


DIRECTIVE_PARENT = """
workflow_type: DirectiveParent
steps:
  - name: Start
    function: steps_fixtures.steps.start_child_by_directive
  - name: After
    function: steps_fixtures.steps.after_child
"""

DEFINITIONS = (
    CHILD,
    CHILD_FAILS,
    CHILD_HUMAN,
    DIRECTIVE_PARENT,
    parent("Parent", "Child"),
    parent("ParentOfFailure", "ChildFails"),
    parent("SagaParentOfFailure", "ChildFails", saga=True),
    parent("ParentOfHuman", "ChildHuman").replace(
        "  - name: After\n    function: steps_fixtures.steps.after_child\n", ""
    ),
    parent("BadTemplate", "Child", value="{{ state.nope }}"),
    parent("UnknownChild", "NoSuchType"),
)


class CrashAt(RecordingObserver):
    """Stops the running coroutine (as a kill would) when ``hook`` fires for a workflow of ``workflow_type``."""

    def __init__(self, hook: str) -> None:
        super().__init__()
        self.hook = hook

    async def on_child_workflow_started(self, parent_id, child_id, child_type):
        if self.hook == "on_child_workflow_started":
            raise asyncio.CancelledError

    async def on_workflow_completed(self, workflow_id):
        if self.hook == "on_workflow_completed":
            raise asyncio.CancelledError


@pytest.fixture
async def engine(sqlite_store):
    async with WorkflowEngine(sqlite_store, registry_of(*DEFINITIONS)) as eng:
        yield eng


async def start_and_run(engine, workflow_type, data):
    return await engine.run((await engine.start_workflow(workflow_type, data)).id)


async def children_of(engine, parent_id, workflow_type):
    return [
        w
        for w in await engine.list_workflows(workflow_type=workflow_type, limit=100)
        if w.parent_id == str(parent_id)
    ]


async def test_declarative_child_completes_and_parent_gets_its_state(engine):
    """The child runs with rendered initial_data; its state lands in sub_workflow_results and the parent goes on."""
    wf = await start_and_run(engine, "Parent", {"value": 3, "marker_dir": ""})
    assert wf.status == "COMPLETED"
    child_state = wf.state.sub_workflow_results["Child"]
    assert child_state["value"] == 3 and child_state["doubled"] == 6
    assert child_state["child_parent"] == str(wf.id)  # the child's context knew its parent
    assert wf.state.after == 6
    [child] = await children_of(engine, wf.id, "Child")
    assert child.status == "COMPLETED"
    by_id = wf.state.sub_workflow_results[str(child.id)]  # the reference's other documented shape
    assert by_id == {
        "workflow_type": "Child",
        "status": "COMPLETED",
        "state": child_state,
        "final_result": child_state,
    }


async def test_directive_starts_a_child_and_waits_for_it(engine):
    """A STANDARD step raising StartSubWorkflowDirective gets its child's state the same way."""
    wf = await start_and_run(engine, "DirectiveParent", {"value": 4})
    assert wf.status == "COMPLETED"
    assert wf.state.sub_workflow_results["Child"]["doubled"] == 10 and wf.state.after == 10
    assert len(await children_of(engine, wf.id, "Child")) == 1


async def test_child_failure_fails_the_parent_with_failed_child_workflow(engine):
    """A failing child ends the parent FAILED_CHILD_WORKFLOW, its error naming the child and why."""
    wf = await start_and_run(engine, "ParentOfFailure", {"value": 1})
    assert wf.status == "FAILED_CHILD_WORKFLOW"
    [child] = await children_of(engine, wf.id, "ChildFails")
    assert child.status == "FAILED"
    assert (
        f"child workflow ChildFails {child.id} ended FAILED" in wf.error
        and "child broke" in wf.error
    )


async def test_child_failure_in_saga_mode_runs_the_parents_compensations(engine):
    """In saga mode the parent's completed steps are compensated before it ends FAILED_CHILD_WORKFLOW."""
    wf = await start_and_run(engine, "SagaParentOfFailure", {"value": 1})
    assert wf.status == "FAILED_CHILD_WORKFLOW"
    assert wf.state.released is True
    events = [a.event_type for a in await engine.get_audit_log(wf.id)]
    assert events[-2:] == ["COMPENSATION_COMPLETED", "WORKFLOW_ROLLED_BACK"]


async def test_retry_of_a_failed_parent_starts_a_fresh_child(engine):
    """engine.retry on a FAILED_CHILD_WORKFLOW parent spawns a new child instead of re-reading the failed one."""
    wf = await start_and_run(engine, "ParentOfFailure", {"value": 1})
    wf = await engine.retry(wf.id)
    assert wf.status == "FAILED_CHILD_WORKFLOW"
    assert len(await children_of(engine, wf.id, "ChildFails")) == 2


async def test_child_waiting_for_a_human_parks_the_parent_until_the_child_is_resumed(engine):
    """Child WAITING_HUMAN → parent WAITING_CHILD_HUMAN_INPUT; resuming the child completes both."""
    wf = await start_and_run(engine, "ParentOfHuman", {"value": 5})
    assert wf.status == "WAITING_CHILD_HUMAN_INPUT"
    [child] = await children_of(engine, wf.id, "ChildHuman")
    assert child.status == "WAITING_HUMAN"
    child = await engine.resume(child.id, {"approved": True})
    assert child.status == "COMPLETED"
    wf = await engine.get_workflow(wf.id)
    assert wf.status == "COMPLETED"
    assert wf.state.sub_workflow_results["ChildHuman"]["approved"] is True


async def test_cancelling_a_waiting_child_fails_its_parent(engine):
    """A cancelled child is a failed child: the waiting parent ends FAILED_CHILD_WORKFLOW."""
    wf = await start_and_run(engine, "ParentOfHuman", {"value": 5})
    [child] = await children_of(engine, wf.id, "ChildHuman")
    await engine.cancel(child.id)
    wf = await engine.get_workflow(wf.id)
    assert wf.status == "FAILED_CHILD_WORKFLOW" and "ended CANCELLED" in wf.error


async def test_running_a_waiting_parent_again_changes_nothing(engine, sqlite_store):
    """engine.run on a parent whose child still waits reads the child and writes nothing."""
    wf = await start_and_run(engine, "ParentOfHuman", {"value": 5})
    before = sqlite_store.commit_count
    again = await engine.run(wf.id)
    assert again.status == "WAITING_CHILD_HUMAN_INPUT" and again.version == wf.version
    assert sqlite_store.commit_count == before


async def test_on_child_workflow_started_fires(sqlite_store):
    """The observer hears on_child_workflow_started(parent, child, type) and the child's start."""
    observer = RecordingObserver()
    async with WorkflowEngine(sqlite_store, registry_of(*DEFINITIONS), observer=observer) as eng:
        wf = await start_and_run(eng, "Parent", {"value": 1, "marker_dir": ""})
        [child] = await children_of(eng, wf.id, "Child")
    assert ("on_child_workflow_started", (str(wf.id), str(child.id), "Child")) in observer.calls
    assert ("on_workflow_started", (str(child.id), "Child")) in observer.calls


async def test_crash_after_the_spawn_commit_resumes_with_the_same_child(sqlite_store, tmp_path):
    """Stopped right after parent and child were committed, engine.run runs that child; no second one appears."""
    registry = registry_of(*DEFINITIONS)
    async with WorkflowEngine(
        sqlite_store, registry, observer=CrashAt("on_child_workflow_started")
    ) as eng:
        wf = await eng.start_workflow("Parent", {"value": 2, "marker_dir": str(tmp_path)})
        with pytest.raises(asyncio.CancelledError):
            await eng.run(wf.id)
        stopped = await eng.get_workflow(wf.id)
        [child] = await children_of(eng, wf.id, "Child")
    assert (stopped.status, child.status) == ("PENDING_SUB_WORKFLOW", "ACTIVE")
    async with WorkflowEngine(sqlite_store, registry) as eng:
        wf = await eng.run(wf.id)
        assert wf.status == "COMPLETED" and wf.state.after == 4
        assert [c.id for c in await children_of(eng, wf.id, "Child")] == [child.id]
    assert (tmp_path / "markers.log").read_text().count("child-work") == 1


async def test_crash_after_the_child_finished_reconciles_from_the_child(sqlite_store, tmp_path):
    """Stopped after the child completed but before the parent moved, engine.run reads the child and finishes."""
    registry = registry_of(*DEFINITIONS)
    async with WorkflowEngine(
        sqlite_store, registry, observer=CrashAt("on_workflow_completed")
    ) as eng:
        wf = await eng.start_workflow("Parent", {"value": 2, "marker_dir": str(tmp_path)})
        with pytest.raises(asyncio.CancelledError):
            await eng.run(wf.id)
        [child] = await children_of(eng, wf.id, "Child")
        assert (await eng.get_workflow(wf.id)).status == "PENDING_SUB_WORKFLOW"
        assert child.status == "COMPLETED"
    async with WorkflowEngine(sqlite_store, registry) as eng:
        wf = await eng.run(wf.id)
    assert wf.status == "COMPLETED" and wf.state.sub_workflow_results["Child"]["doubled"] == 4
    assert (tmp_path / "markers.log").read_text().count("child-work") == 1


async def test_bad_initial_data_template_fails_the_step_with_the_field(engine):
    """An undefined name in initial_data fails the parent step naming the field, and starts no child."""
    wf = await start_and_run(engine, "BadTemplate", {"value": 1})
    assert wf.status == "FAILED"
    assert "cannot render initial_data.value" in wf.error
    assert await children_of(engine, wf.id, "Child") == []


async def test_unknown_child_type_fails_the_step(engine):
    """Starting a child of an unregistered type fails the step with the type named."""
    wf = await start_and_run(engine, "UnknownChild", {"value": 1})
    assert wf.status == "FAILED" and "unknown workflow type 'NoSuchType'" in wf.error


async def test_the_whole_child_lifecycle_on_the_memory_provider():
    """Spawn, child waiting for a human, resume, parent completion: the same on MemoryPersistenceProvider."""
    async with WorkflowEngine(MemoryPersistenceProvider(), registry_of(*DEFINITIONS)) as eng:
        wf = await start_and_run(eng, "ParentOfHuman", {"value": 8})
        assert wf.status == "WAITING_CHILD_HUMAN_INPUT"
        [child] = await children_of(eng, wf.id, "ChildHuman")
        await eng.resume(child.id, {"approved": False})
        wf = await eng.get_workflow(wf.id)
        assert wf.status == "COMPLETED"
        assert wf.state.sub_workflow_results["ChildHuman"]["doubled"] == 16

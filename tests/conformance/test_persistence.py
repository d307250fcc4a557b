"""The shared behavioural suite: every persistence backend must pass it unchanged."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from conformance.backends import BACKENDS
from conformance.records import create, finish, step, workflow

from ruvon_edge.providers.persistence import (
    ConcurrentUpdateError,
    DuplicateIdempotencyKeyError,
    TaskNotFoundError,
    Transition,
    WorkflowNotFoundError,
)

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|\+00:00)$")


def task(wid: str, **kw) -> dict:
    return {"task_id": str(uuid.uuid4()), "workflow_id": wid, "step_name": "Charge",
            "function_path": "app.steps.charge", "payload": {"amount": 80}, **kw}  # fmt: skip


# -- workflows -------------------------------------------------------------------------
async def test_save_and_load_round_trip_every_key(store):
    """A saved workflow reads back with every key, JSON values intact and store bookkeeping set."""
    wf = workflow(definition={"steps": ["Reserve"]}, saga_log=[{"step": "Reserve"}], context={"trace": "t1"},
                  parent_id=str(uuid.uuid4()), idempotency_key="k-1", owner_id="o", data_region="eu",
                  error=None, custom_flag={"keep": True})  # fmt: skip
    await store.save_workflow(uuid.UUID(wf["id"]), wf)
    got = await store.load_workflow(wf["id"])
    for key, value in wf.items():
        assert got[key] == value, key
    assert got["version"] == 1 and got["sync_seq"] is None and got["completed_at"] is None
    assert ISO.match(got["created_at"]) and ISO.match(got["updated_at"])


async def test_save_again_bumps_version_and_keeps_created_at(store):
    """Saving an existing workflow replaces it, bumps its version and keeps its creation time."""
    wf = workflow()
    await store.save_workflow(wf["id"], wf)
    first = await store.load_workflow(wf["id"])
    await store.save_workflow(wf["id"], {**wf, "state": {"x": 2}, "current_step": "Ship"})
    got = await store.load_workflow(wf["id"])
    assert (got["version"], got["state"], got["current_step"]) == (2, {"x": 2}, "Ship")
    assert got["created_at"] == first["created_at"] and got["updated_at"] >= first["updated_at"]


async def test_missing_workflow_raises_not_found_also_as_value_error(store):
    """Loading an unknown id raises WorkflowNotFoundError, which `except ValueError` also catches."""
    missing = uuid.uuid4()
    with pytest.raises(WorkflowNotFoundError) as info:
        await store.load_workflow(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(ValueError):
        await store.load_workflow(missing)


async def test_list_newest_first_filtered_and_paginated(store):
    """list_workflows filters by status and type, returns newest first and pages without overlap."""
    made = []
    for i in range(7):
        wf = workflow(
            "COMPLETED" if i % 2 else "ACTIVE", workflow_type="Refund" if i == 6 else "Order"
        )
        await store.save_workflow(wf["id"], wf)
        made.append(wf["id"])
        await asyncio.sleep(0.001)
    assert [w["id"] for w in await store.list_workflows(limit=100)] == made[::-1]
    assert [w["id"] for w in await store.list_workflows(status="COMPLETED")] == [
        made[5],
        made[3],
        made[1],
    ]
    assert [w["id"] for w in await store.list_workflows(workflow_type="Refund")] == [made[6]]
    assert [
        w["id"] for w in await store.list_workflows(status="ACTIVE", workflow_type="Order")
    ] == [made[4], made[2], made[0]]
    pages = [await store.list_workflows(limit=3, offset=o) for o in (0, 3, 6)]
    assert [w["id"] for page in pages for w in page] == made[::-1]
    assert [len(p) for p in pages] == [3, 3, 1]


# -- commit ------------------------------------------------------------------------------
async def test_commit_creates_then_compare_and_sets_on_version(store):
    """commit creates at version 1, each later commit bumps the version it was given."""
    wf = await create(store)
    assert wf["version"] == 1
    assert await store.commit([step({**wf, "state": {"n": 2}}, 1)]) == [2]
    assert await store.commit([step(wf, 2)]) == [3]
    assert (await store.load_workflow(wf["id"]))["version"] == 3


async def test_stale_version_raises_and_writes_nothing(store):
    """A commit against an old version raises ConcurrentUpdateError and leaves row and audit as they were."""
    wf = await create(store)
    await store.commit([step(wf, 1)])
    with pytest.raises(ConcurrentUpdateError) as info:
        await store.commit(
            [step({**wf, "state": {"lost": True}}, 1, logs=[{"level": "INFO", "message": "x"}])]
        )
    assert (info.value.expected, info.value.actual) == (1, 2)
    got = await store.load_workflow(wf["id"])
    assert got["version"] == 2 and got["state"] == wf["state"]
    assert len(await store.get_audit_logs(wf["id"])) == 2
    assert await store.get_execution_logs(wf["id"]) == []


async def test_create_of_existing_id_raises_concurrent_update(store):
    """Creating (expected_version None) a workflow whose id exists fails and changes nothing."""
    wf = await create(store)
    with pytest.raises(ConcurrentUpdateError):
        await store.commit([step({**wf, "state": {"other": 1}}, None)])
    assert (await store.load_workflow(wf["id"]))["state"] == wf["state"]


async def test_multi_transition_commit_is_all_or_nothing(store):
    """When one transition of a commit conflicts, none of the others is written either."""
    a, b = await create(store), await create(store)
    fresh = workflow()
    with pytest.raises(ConcurrentUpdateError):
        await store.commit([step({**a, "state": {"a": 2}}, 1, metrics=[{"metric_name": "ms", "metric_value": 1}]),
                            step(fresh, None, tasks=[task(fresh["id"])]),
                            step(b, 99)])  # fmt: skip
    assert (await store.load_workflow(a["id"]))["version"] == 1
    assert await store.get_metrics(a["id"]) == []
    with pytest.raises(WorkflowNotFoundError):
        await store.load_workflow(fresh["id"])
    assert await store.claim_next_task("w") is None


async def test_duplicate_idempotency_key_names_existing_workflow(store):
    """A second create with a used idempotency key raises with existing_id and writes nothing."""
    first = await create(store, idempotency_key="order-A1")
    second = workflow(idempotency_key="order-A1")
    with pytest.raises(DuplicateIdempotencyKeyError) as info:
        await store.commit([step(second, None)])
    assert info.value.existing_id == first["id"] and info.value.key == "order-A1"
    with pytest.raises(WorkflowNotFoundError):
        await store.load_workflow(second["id"])
    assert len(await store.list_workflows()) == 1


async def test_sync_seq_assigned_once_on_becoming_terminal_and_monotonic(store):
    """sync_seq stays empty while running, is set when terminal, never changes after, and grows."""
    a, b = await create(store), await create(store)
    assert (await store.load_workflow(a["id"]))["sync_seq"] is None
    b = await finish(store, b)
    a = await finish(store, a, "FAILED")
    got_a, got_b = await store.load_workflow(a["id"]), await store.load_workflow(b["id"])
    assert got_b["sync_seq"] < got_a["sync_seq"]
    assert got_a["completed_at"] and ISO.match(got_a["completed_at"])
    await store.commit([step({**a, "error": "again"}, a["version"])])  # terminal -> terminal
    again = await store.load_workflow(a["id"])
    assert (again["sync_seq"], again["completed_at"]) == (got_a["sync_seq"], got_a["completed_at"])
    c = await finish(store, await create(store), "CANCELLED")
    assert (await store.load_workflow(c["id"]))["sync_seq"] > got_a["sync_seq"]


async def test_commit_writes_audit_logs_metrics_and_tasks_together(store):
    """One commit stores its audit rows, log lines, metrics and tasks, all readable back in order."""
    wf = workflow()
    t = task(wf["id"])
    await store.commit([Transition(workflow=wf, expected_version=None,
        audit=[{"event_type": "WORKFLOW_STARTED", "new_status": "ACTIVE", "details": {"by": "test"}},
               {"event_type": "STEP_EXECUTED", "step_name": "Reserve", "old_status": "ACTIVE", "new_status": "ACTIVE"}],
        logs=[{"step_name": "Reserve", "level": "INFO", "message": "reserved", "metadata": {"sku": 1}}],
        metrics=[{"step_name": "Reserve", "metric_name": "duration_ms", "metric_value": 12.5}],
        tasks=[t])])  # fmt: skip
    audit = await store.get_audit_logs(wf["id"])
    assert [a.event_type for a in audit] == ["WORKFLOW_STARTED", "STEP_EXECUTED"]
    assert audit[0].details == {"by": "test"} and audit[1].old_status == "ACTIVE"
    assert len({a.audit_id for a in audit}) == 2 and all(ISO.match(a.recorded_at) for a in audit)
    [log] = await store.get_execution_logs(wf["id"])
    assert (log["level"], log["message"], log["metadata"]) == ("INFO", "reserved", {"sku": 1})
    [metric] = await store.get_metrics(wf["id"])
    assert (metric["metric_name"], metric["metric_value"]) == ("duration_ms", 12.5)
    got = await store.get_task(t["task_id"])
    assert (got["status"], got["payload"], got["workflow_id"]) == (
        "QUEUED",
        {"amount": 80},
        wf["id"],
    )


async def test_redispatching_a_task_id_is_idempotent(store):
    """Queueing a task id that exists already leaves the first task as it was."""
    wf = await create(store)
    t = task(wf["id"])
    await store.commit([step(wf, 1, tasks=[t])])
    claimed = await store.claim_next_task("w1")
    await store.commit([step(wf, 2, tasks=[{**t, "payload": {"amount": 1}}])])
    again = await store.get_task(t["task_id"])
    assert (again["status"], again["payload"], again["attempts"]) == ("RUNNING", {"amount": 80}, 1)
    assert claimed["task_id"] == t["task_id"] and await store.claim_next_task("w2") is None


async def test_log_and_metric_methods_read_back_oldest_first(store):
    """log_execution and record_metric append rows that read back per workflow, oldest first."""
    wf, other = await create(store), await create(store)
    for i in range(3):
        await store.log_execution(wf["id"], "Reserve", "INFO", f"line {i}", {"i": i})
        await store.record_metric(wf["id"], "Reserve", "count", i)
    await store.log_execution(other["id"], None, "ERROR", "elsewhere")
    assert [g["message"] for g in await store.get_execution_logs(wf["id"])] == [
        "line 0",
        "line 1",
        "line 2",
    ]
    assert [m["metric_value"] for m in await store.get_metrics(wf["id"])] == [0.0, 1.0, 2.0]
    assert [g["metadata"] for g in await store.get_execution_logs(other["id"])] == [None]


# -- tasks -------------------------------------------------------------------------------
async def test_claim_takes_oldest_queued_task_once(store):
    """claim_next_task hands out the oldest queued task, marks it RUNNING for that worker, then the next."""
    ids = [await store.enqueue_task(task("wf-1", max_attempts=2)) for _ in range(2)]
    first = await store.claim_next_task("worker-a")
    assert (first["task_id"], first["status"], first["worker_id"], first["attempts"]) == (
        ids[0],
        "RUNNING",
        "worker-a",
        1,
    )
    assert ISO.match(first["claimed_at"]) and first["heartbeat_at"] == first["claimed_at"]
    assert (await store.claim_next_task("worker-b"))["task_id"] == ids[1]
    assert await store.claim_next_task("worker-c") is None


async def test_concurrent_claimers_never_share_a_task(store):
    """Four concurrent claimers over fifty tasks: every task is claimed exactly once."""
    ids = {await store.enqueue_task(task("wf")) for _ in range(50)}
    claimed: list[str] = []

    async def worker(name: str) -> None:
        while (t := await store.claim_next_task(name)) is not None:
            claimed.append(t["task_id"])

    await asyncio.gather(*(worker(f"w{i}") for i in range(4)))
    assert sorted(claimed) == sorted(ids)


@pytest.mark.parametrize(
    "backend", [pytest.param(b, id=b.id, marks=b.marks) for b in BACKENDS if b.reopen]
)
async def test_two_store_instances_never_share_a_task(backend, tmp_path):
    """Two providers on one store (two workers) with two claimers each: every task is claimed exactly once."""
    async with backend.factory(tmp_path) as one, backend.reopen(one) as two:
        ids = {await one.enqueue_task(task("wf")) for _ in range(50)}
        claimed: list[str] = []

        async def worker(store, name: str) -> None:
            while (t := await store.claim_next_task(name)) is not None:
                claimed.append(t["task_id"])

        await asyncio.gather(*(worker(s, f"{i}") for i, s in enumerate([one, two, one, two])))
        assert sorted(claimed) == sorted(ids)


async def test_finish_only_from_running_and_cancel_unfinished(store):
    """finish_task works only on RUNNING tasks; cancel_task stops QUEUED or RUNNING ones only."""
    a, b, c = [await store.enqueue_task(task("wf")) for _ in range(3)]
    assert await store.finish_task(a, "COMPLETED", {"ok": 1}) is False  # still queued
    await store.claim_next_task("w")
    assert await store.finish_task(a, "COMPLETED", {"ok": 1}) is True
    done = await store.get_task(a)
    assert (done["status"], done["result"]) == ("COMPLETED", {"ok": 1})
    assert await store.cancel_task(a) is False
    assert await store.cancel_task(b) is True  # queued
    await store.claim_next_task("w")  # takes c: b is cancelled
    assert await store.cancel_task(c) is True  # running
    assert await store.finish_task(c, "FAILED", error="boom") is False
    assert (await store.get_task(c))["status"] == "CANCELLED"
    with pytest.raises(TaskNotFoundError):
        await store.get_task("nope")
    with pytest.raises(TaskNotFoundError):
        await store.finish_task("nope", "COMPLETED")


async def test_requeue_stale_tasks_retries_then_fails(store):
    """A task whose worker went silent is requeued while it has attempts left, then failed as 'worker died'."""
    tid = await store.enqueue_task(task("wf", max_attempts=2))
    await store.claim_next_task("w1")
    fresh = await store.requeue_stale_tasks(60)
    await asyncio.sleep(0.01)
    [requeued] = await store.requeue_stale_tasks(0)
    assert fresh == [] and (requeued["task_id"], requeued["status"]) == (tid, "QUEUED")
    assert (await store.claim_next_task("w2"))["attempts"] == 2
    await asyncio.sleep(0.01)
    [failed] = await store.requeue_stale_tasks(0)
    assert (failed["status"], failed["error"]) == ("FAILED", "worker died")
    assert await store.claim_next_task("w3") is None


# -- heartbeats --------------------------------------------------------------------------
async def test_scan_returns_only_stale_in_flight_heartbeats(store):
    """The scan lists in-flight workflows with old heartbeats, with status and version for recovery."""
    stale, waiting, done = (
        await create(store),
        await create(store, "WAITING_HUMAN"),
        await create(store),
    )
    done = await finish(store, done)
    for wf in (stale, waiting, done):
        await store.heartbeat_update(wf["id"], "worker-1", "Reserve", {"pid": 7})
    assert await store.scan_stale_heartbeats(60) == []
    await asyncio.sleep(0.01)
    [hb] = await store.scan_stale_heartbeats(0)
    assert (hb["workflow_id"], hb["worker_id"], hb["current_step"], hb["metadata"]) == (
        stale["id"],
        "worker-1",
        "Reserve",
        {"pid": 7},
    )
    assert (hb["status"], hb["version"]) == ("ACTIVE", 1) and ISO.match(hb["last_heartbeat"])


async def test_commit_clears_the_heartbeat(store):
    """Committing a workflow's step removes its heartbeat: the step in flight has finished."""
    wf = await create(store)
    await store.heartbeat_update(wf["id"], "worker-1", "Reserve")
    await store.commit([step(wf, 1)])
    await asyncio.sleep(0.01)
    assert await store.scan_stale_heartbeats(0) == []

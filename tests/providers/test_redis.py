"""Redis-specific behaviour of RedisPersistenceProvider (the shared suite covers the rest)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from providers.stores import prefix_keys, redis_store, unique_prefix

from ruvon_edge.implementations.persistence.redis import RedisPersistenceProvider
from ruvon_edge.providers.persistence import (
    ConcurrentUpdateError,
    DuplicateIdempotencyKeyError,
    PersistenceError,
    Transition,
    WorkflowNotFoundError,
)

pytestmark = pytest.mark.services


def _wf(status: str = "ACTIVE", workflow_type: str = "Order", **fields) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "workflow_type": workflow_type,
        "status": status,
        "state": {"n": 1},
        **fields,
    }


@pytest.fixture
async def store(redis_url):
    async with redis_store(redis_url) as s:
        yield s


async def _clients(url: str, prefix: str, n: int) -> list[RedisPersistenceProvider]:
    clients = [RedisPersistenceProvider(url, prefix=prefix) for _ in range(n)]
    await asyncio.gather(*(c.initialize() for c in clients))
    return clients


async def test_prefixes_isolate_deployments_and_hold_every_key(redis_url):
    """Two providers with different prefixes never see each other's rows, and every key written is under its prefix."""
    async with redis_store(redis_url) as a, redis_store(redis_url) as b:
        row = _wf(idempotency_key="k1")
        task = {"workflow_id": row["id"], "function_path": "app.f"}
        await a.commit([Transition(row, None, audit=[{"event_type": "CREATED"}], tasks=[task])])
        await a.heartbeat_update(row["id"], "w1", "Step")
        await a.log_execution(row["id"], "Step", "INFO", "hello")
        assert await b.list_workflows() == []
        assert await b.claim_next_task("w") is None
        with pytest.raises(WorkflowNotFoundError):
            await b.load_workflow(row["id"])
        keys = await prefix_keys(redis_url, a.prefix)
        assert keys and all(k.startswith(a.prefix + ":") for k in keys)
        assert await prefix_keys(redis_url, b.prefix) == []


async def test_compare_and_set_has_exactly_one_winner(redis_url):
    """Eight clients committing against the same row version at once: one wins, seven get ConcurrentUpdateError."""
    async with redis_store(redis_url) as store:
        row = _wf()
        await store.commit([Transition(row, None)])
        clients = await _clients(redis_url, store.prefix, 8)
        try:
            outcomes = await asyncio.gather(
                *(c.commit([Transition({**row, "current_step": f"s{n}"}, 1, audit=[{"event_type": f"E{n}"}])])
                  for n, c in enumerate(clients)),
                return_exceptions=True,
            )  # fmt: skip
        finally:
            for c in clients:
                await c.close()
        assert sum(1 for o in outcomes if o == [2]) == 1
        assert all(isinstance(o, ConcurrentUpdateError) for o in outcomes if o != [2])
        loaded = await store.load_workflow(row["id"])
        assert loaded["version"] == 2
        assert [a.event_type for a in await store.get_audit_logs(row["id"])] == [
            f"E{loaded['current_step'][1:]}"
        ]


async def test_failed_transition_writes_nothing_of_the_commit(store):
    """When one transition of a commit loses its compare-and-set, no row, index entry, audit row or task of the commit exists."""
    other = _wf()
    await store.commit([Transition(other, None)])
    new = _wf(status="WAITING_HUMAN")
    task = {"task_id": "t-1", "workflow_id": new["id"], "function_path": "app.f"}
    with pytest.raises(ConcurrentUpdateError) as info:
        await store.commit(
            [
                Transition(new, None, audit=[{"event_type": "CREATED"}], tasks=[task]),
                Transition(other, 7),
            ]
        )
    assert (info.value.expected, info.value.actual) == (7, 1)
    with pytest.raises(WorkflowNotFoundError):
        await store.load_workflow(new["id"])
    assert await store.list_workflows(status="WAITING_HUMAN") == []
    assert await store.get_audit_logs(new["id"]) == []
    assert await store.claim_next_task("w") is None


async def test_concurrent_starts_with_one_idempotency_key_create_one_workflow(redis_url):
    """Six clients racing to create workflows with the same idempotency key: one row exists, the others learn its id."""
    async with redis_store(redis_url) as store:
        clients = await _clients(redis_url, store.prefix, 6)
        rows = [_wf(idempotency_key="order-42") for _ in clients]
        try:
            outcomes = await asyncio.gather(
                *(c.commit([Transition(r, None)]) for c, r in zip(clients, rows, strict=True)),
                return_exceptions=True,
            )
        finally:
            for c in clients:
                await c.close()
        created = [r["id"] for r, o in zip(rows, outcomes, strict=True) if o == [1]]
        assert len(created) == 1
        dups = [o for o in outcomes if isinstance(o, DuplicateIdempotencyKeyError)]
        assert len(dups) == 5 and {d.existing_id for d in dups} == set(created)
        assert [w["id"] for w in await store.list_workflows()] == created


async def test_claims_are_exclusive_across_clients(redis_url):
    """Twelve claim loops over four clients drain sixty tasks, each claimed exactly once, oldest first per client."""
    async with redis_store(redis_url) as store:
        for n in range(60):
            await store.enqueue_task(
                {"task_id": f"t{n:02d}", "workflow_id": "wf", "function_path": "app.f"}
            )
        clients = await _clients(redis_url, store.prefix, 4)

        async def drain(c: RedisPersistenceProvider, worker: str) -> list[str]:
            taken = []
            while (task := await c.claim_next_task(worker)) is not None:
                assert task["status"] == "RUNNING" and task["worker_id"] == worker
                taken.append(task["task_id"])
            return taken

        try:
            results = await asyncio.gather(
                *(drain(c, f"w{i}-{j}") for i, c in enumerate(clients) for j in range(3))
            )
        finally:
            for c in clients:
                await c.close()
        assert sorted(t for r in results for t in r) == [f"t{n:02d}" for n in range(60)]
        assert all(r == sorted(r) for r in results)


async def test_indexes_follow_status_changes_and_paginate_newest_first(store):
    """The status/type indexes move with each transition, and pages walk newest first without gaps or overlaps."""
    same_time = "2026-01-01T00:00:00.000000Z"
    rows = [_wf(workflow_type="A" if n % 2 else "B", created_at=same_time) for n in range(9)]
    for r in rows:
        await store.commit([Transition(r, None)])
    done = rows[3]
    await store.commit([Transition({**done, "status": "COMPLETED"}, 1)])
    active = [w["id"] for w in await store.list_workflows(status="ACTIVE", limit=100)]
    assert done["id"] not in active and len(active) == 8
    assert [w["id"] for w in await store.list_workflows(status="COMPLETED", workflow_type="A")] == [
        done["id"]
    ]
    assert await store.list_workflows(status="COMPLETED", workflow_type="B") == []
    pages = [await store.list_workflows(limit=4, offset=o) for o in (0, 4, 8)]
    assert [w["id"] for page in pages for w in page] == [r["id"] for r in reversed(rows)]


async def test_heartbeats_keep_a_running_task_from_being_requeued(store):
    """A worker that heartbeats its workflow keeps its claimed task; once it goes silent the task is requeued."""
    row = _wf()
    await store.commit([Transition(row, None, tasks=[{"task_id": "t", "function_path": "app.f"}])])
    assert (await store.claim_next_task("w1"))["task_id"] == "t"
    await asyncio.sleep(0.3)
    await store.heartbeat_update(row["id"], "w1", "Step")
    assert await store.requeue_stale_tasks(0.2) == []
    await asyncio.sleep(0.3)
    [requeued] = await store.requeue_stale_tasks(0.2)
    assert (requeued["task_id"], requeued["status"], requeued["worker_id"]) == ("t", "QUEUED", None)
    assert (await store.claim_next_task("w2"))["attempts"] == 2


async def test_unreachable_server_is_a_one_line_persistence_error():
    """A server that is not listening fails initialize() with a PersistenceError naming the store."""
    store = RedisPersistenceProvider(
        "redis://127.0.0.1:1/0", prefix=unique_prefix(), socket_timeout=2
    )
    with pytest.raises(PersistenceError, match="Redis store .* could not start") as info:
        await store.initialize()
    assert "\n" not in str(info.value)


def test_prefix_must_be_non_empty():
    """An empty prefix, which would mix this store's keys with everything else in the database, is refused."""
    with pytest.raises(ValueError, match="prefix"):
        RedisPersistenceProvider("redis://127.0.0.1:6379/0", prefix="")

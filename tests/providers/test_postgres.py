"""PostgreSQL-specific behaviour of PostgresPersistenceProvider (the shared suite covers the rest)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from providers.stores import drop_schema, postgres_store, unique_schema

from ruvon_edge.implementations.persistence.postgres import PostgresPersistenceProvider
from ruvon_edge.providers.persistence import (
    ConcurrentUpdateError,
    DuplicateIdempotencyKeyError,
    PersistenceError,
    Transition,
    WorkflowNotFoundError,
)

pytestmark = pytest.mark.services


def _wf(status: str = "ACTIVE", **fields) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "workflow_type": "Order",
        "status": status,
        "state": {"n": 1},
        **fields,
    }


@pytest.fixture
async def store(postgres_dsn):
    async with postgres_store(postgres_dsn) as s:
        yield s


async def _sql(dsn: str, sql: str, *args):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_initialize_twice_and_concurrently_migrates_once(postgres_dsn):
    """Initializing the same schema from several providers at once and again later applies each migration once and keeps the data."""
    schema = unique_schema()
    stores = [
        PostgresPersistenceProvider(postgres_dsn, schema=schema, max_size=2) for _ in range(4)
    ]
    try:
        await asyncio.gather(*(s.initialize() for s in stores))
        row = _wf()
        await stores[0].commit([Transition(row, None)])
        await stores[1].close()
        await stores[1].initialize()
        assert (await stores[1].load_workflow(row["id"]))["state"] == {"n": 1}
        versions = await _sql(postgres_dsn, f'SELECT version FROM "{schema}".schema_version')
        assert [r["version"] for r in versions] == [1]
    finally:
        for s in stores:
            await s.close()
        await drop_schema(postgres_dsn, schema)


async def test_refuses_a_schema_newer_than_the_code(postgres_dsn):
    """A schema migrated by a newer release is refused with a one-line error instead of being misread."""
    async with postgres_store(postgres_dsn) as first:
        await _sql(
            postgres_dsn, f'INSERT INTO "{first.schema}".schema_version (version) VALUES (99)'
        )
        newer = PostgresPersistenceProvider(postgres_dsn, schema=first.schema)
        with pytest.raises(PersistenceError, match="newer"):
            await newer.initialize()


async def test_state_and_timestamps_use_native_types(store, postgres_dsn):
    """State is stored as queryable JSONB and timestamps as timestamptz equal to what the provider returns."""
    row = _wf(state={"items": ["a", "b"], "total": 12.5})
    await store.commit([Transition(row, None)])
    loaded = await store.load_workflow(row["id"])
    [rec] = await _sql(
        postgres_dsn,
        f"SELECT state->'items'->>1 AS second, (state->>'total')::float AS total, pg_typeof(created_at)::text AS ts,"
        f" to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created"
        f' FROM "{store.schema}".workflows WHERE id = $1',
        row["id"],
    )
    assert (rec["second"], rec["total"], rec["ts"]) == ("b", 12.5, "timestamp with time zone")
    assert rec["created"] == loaded["created_at"]


async def test_compare_and_set_has_exactly_one_winner(store):
    """Eight connections committing against the same row version at once: one wins, seven get ConcurrentUpdateError."""
    row = _wf()
    await store.commit([Transition(row, None)])

    async def attempt(n: int):
        step = {**row, "current_step": f"step-{n}"}
        audit = [{"event_type": "STEP_EXECUTED", "step_name": f"step-{n}"}]
        return await store.commit([Transition(step, 1, audit=audit)])

    outcomes = await asyncio.gather(*(attempt(n) for n in range(8)), return_exceptions=True)
    winners = [o for o in outcomes if o == [2]]
    assert len(winners) == 1
    assert all(isinstance(o, ConcurrentUpdateError) for o in outcomes if o != [2])
    loaded = await store.load_workflow(row["id"])
    audit = await store.get_audit_logs(row["id"])
    assert loaded["version"] == 2 and [a.step_name for a in audit] == [loaded["current_step"]]


async def test_failed_transition_rolls_back_the_whole_commit(store):
    """When one transition of a commit loses its compare-and-set, the others' rows, audit and tasks are not written."""
    other = _wf()
    await store.commit([Transition(other, None)])
    new = _wf()
    task = {"task_id": "t-1", "workflow_id": new["id"], "function_path": "app.f"}
    first = Transition(new, None, audit=[{"event_type": "CREATED"}], tasks=[task])
    with pytest.raises(ConcurrentUpdateError):
        await store.commit([first, Transition(other, 7)])
    with pytest.raises(WorkflowNotFoundError):
        await store.load_workflow(new["id"])
    assert await store.get_audit_logs(new["id"]) == []
    assert await store.claim_next_task("w") is None


async def test_concurrent_starts_with_one_idempotency_key_create_one_workflow(store):
    """Six creators racing with the same idempotency key: one row exists, the others learn its id."""
    rows = [_wf(idempotency_key="order-42") for _ in range(6)]
    outcomes = await asyncio.gather(
        *(store.commit([Transition(r, None)]) for r in rows), return_exceptions=True
    )
    created = [r["id"] for r, o in zip(rows, outcomes, strict=True) if o == [1]]
    assert len(created) == 1
    dups = [o for o in outcomes if isinstance(o, DuplicateIdempotencyKeyError)]
    assert len(dups) == 5 and {d.existing_id for d in dups} == set(created)
    assert [w["id"] for w in await store.list_workflows()] == created


async def test_skip_locked_claims_are_exclusive_across_processes_pools(postgres_dsn):
    """Twelve claim loops over four separate pools drain sixty tasks, each claimed exactly once."""
    async with postgres_store(postgres_dsn) as main:
        for n in range(60):
            await main.enqueue_task(
                {"task_id": f"t{n:02d}", "workflow_id": "wf", "function_path": "app.f"}
            )
        pools = [
            PostgresPersistenceProvider(postgres_dsn, schema=main.schema, max_size=3)
            for _ in range(4)
        ]
        await asyncio.gather(*(p.initialize() for p in pools))

        async def drain(p: PostgresPersistenceProvider, worker: str) -> list[str]:
            taken = []
            while (task := await p.claim_next_task(worker)) is not None:
                taken.append(task["task_id"])
            return taken

        try:
            results = await asyncio.gather(
                *(drain(p, f"w{i}-{j}") for i, p in enumerate(pools) for j in range(3))
            )
        finally:
            for p in pools:
                await p.close()
        claimed = [t for r in results for t in r]
        assert sorted(claimed) == [f"t{n:02d}" for n in range(60)]
        assert sum(1 for r in results if r) > 1  # the work really was shared


async def test_schemas_isolate_deployments(postgres_dsn):
    """Two providers on one database but different schemas never see each other's workflows."""
    async with postgres_store(postgres_dsn) as a, postgres_store(postgres_dsn) as b:
        row = _wf()
        await a.commit([Transition(row, None)])
        assert await b.list_workflows() == []
        with pytest.raises(WorkflowNotFoundError):
            await b.load_workflow(row["id"])


async def test_sync_seq_follows_the_order_workflows_finish(store):
    """sync_seq comes from a sequence in completion order, not creation order."""
    rows = [_wf() for _ in range(3)]
    for r in rows:
        await store.commit([Transition(r, None)])
    for r in reversed(rows):
        await store.commit([Transition({**r, "status": "COMPLETED"}, 1)])
    seqs = [(await store.load_workflow(r["id"]))["sync_seq"] for r in rows]
    assert seqs[2] < seqs[1] < seqs[0]


async def test_unreachable_server_is_a_one_line_persistence_error():
    """A server that is not listening fails initialize() with a PersistenceError naming the store."""
    store = PostgresPersistenceProvider("postgresql://postgres@127.0.0.1:1/test", schema="nowhere")
    with pytest.raises(PersistenceError, match="PostgreSQL store .* could not start") as info:
        await store.initialize()
    assert "\n" not in str(info.value)
    await store.close()


def test_schema_name_must_be_an_identifier():
    """A schema name that is not a plain identifier is refused before any SQL is built."""
    with pytest.raises(ValueError, match="schema name"):
        PostgresPersistenceProvider("postgresql://127.0.0.1/x", schema='x"; DROP TABLE y; --')


async def test_synchronous_commit_can_be_relaxed(postgres_dsn):
    """synchronous_commit="off" reaches every pooled connection; the default keeps the server's durable setting."""
    async with (
        postgres_store(postgres_dsn, synchronous_commit="off") as fast,
        postgres_store(postgres_dsn) as safe,
    ):
        async with fast._conn("probe") as conn:
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
        async with safe._conn("probe") as conn:
            assert await conn.fetchval("SHOW synchronous_commit") == "on"

"""Retention settings of the stores that support sync: failures and idempotency keys expire when configured."""

from __future__ import annotations

import pytest
from conformance.records import create, finish, step, workflow

from ruvon_edge.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon_edge.providers.persistence import IdempotencyKeySyncedError, WorkflowNotFoundError


@pytest.fixture(params=["sqlite", "memory"])
def make_store(request, tmp_path):
    def make(**retention):
        if request.param == "memory":
            return MemoryPersistenceProvider(**retention)
        return SQLitePersistenceProvider(tmp_path / "edge.db", **retention)

    return make


async def settle(store, wf: dict) -> int:
    audit = await store.get_audit_logs_for_workflows([wf["id"]], 1000)
    await store.ack_synced_audit_logs([a.audit_id for a in audit])
    return await store.delete_synced_workflows([wf["id"]], versions={wf["id"]: wf["version"]})


async def test_a_failure_past_its_retention_is_deleted_and_its_key_is_remembered(make_store):
    """With failed_retention_seconds=0 the sync that delivers a failure deletes it; its key then names it as FAILED."""
    async with make_store(failed_retention_seconds=0) as store:
        failed = await finish(store, await create(store, idempotency_key="K1"), "FAILED")
        kept = await finish(store, await create(store), "FAILED")
        assert await settle(store, failed) == 1
        with pytest.raises(WorkflowNotFoundError):
            await store.load_workflow(failed["id"])
        with pytest.raises(IdempotencyKeySyncedError, match="which ended FAILED"):
            await store.commit([step(workflow(idempotency_key="K1"), None)])
        assert (await store.load_workflow(kept["id"]))["status"] == "FAILED"  # never synced: kept


async def test_defaults_keep_failures_a_week_and_keys_thirty_days(make_store):
    """The documented defaults: 7 days for synced failures, 30 days for idempotency keys."""
    async with make_store() as store:
        assert (store.retention.failed_seconds, store.retention.idempotency_seconds) == (
            7 * 86400,
            30 * 86400,
        )


async def test_a_key_past_its_retention_can_start_a_new_workflow(make_store):
    """With idempotency_retention_seconds=0 a synced workflow's key is free again at once."""
    async with make_store(idempotency_retention_seconds=0) as store:
        done = await finish(store, await create(store, idempotency_key="K2"))
        assert await settle(store, done) == 1
        fresh = workflow(idempotency_key="K2")
        assert await store.commit([step(fresh, None)]) == [1]
        assert (await store.load_workflow(fresh["id"]))["idempotency_key"] == "K2"


def test_negative_retention_is_refused():
    """A negative retention is a configuration error, said at construction."""
    with pytest.raises(ValueError, match="retention periods must be >= 0"):
        MemoryPersistenceProvider(failed_retention_seconds=-1)

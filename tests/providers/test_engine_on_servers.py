"""The engine on PostgreSQL and Redis: two engines (as two processes would) sharing one store."""

from __future__ import annotations

import pytest
import server_app
from providers.stores import POSTGRES_DSN, REDIS_URL, postgres_store, redis_store, require

from ruvon_edge import WorkflowEngine
from ruvon_edge.implementations.persistence.postgres import PostgresPersistenceProvider
from ruvon_edge.implementations.persistence.redis import RedisPersistenceProvider

pytestmark = pytest.mark.services


def _postgres():
    return postgres_store(require("PostgreSQL", POSTGRES_DSN)), (
        lambda s: PostgresPersistenceProvider(s.dsn, schema=s.schema)
    )


def _redis():
    return redis_store(require("Redis", REDIS_URL)), (
        lambda s: RedisPersistenceProvider(s.url, prefix=s.prefix)
    )


@pytest.fixture(params=[_postgres, _redis], ids=["postgres", "redis"])
async def stores(request):
    """Two providers on one fresh store."""
    first_cm, second_of = request.param()
    async with first_cm as first:
        second = second_of(first)
        await second.initialize()
        try:
            yield first, second
        finally:
            await second.close()


async def test_a_second_engine_resumes_what_the_first_left_waiting(stores):
    """A workflow started by one engine and left WAITING_HUMAN is resumed to completion by another engine on the same store."""
    first, second = stores
    async with WorkflowEngine(persistence=first, registry=server_app.registry()) as a:
        wf = await a.run(
            (await a.start_workflow("Refund", {"amount": 40}, idempotency_key="r-1")).id
        )
        assert (wf.status, wf.current_step) == ("WAITING_HUMAN", "Approve")
    async with WorkflowEngine(persistence=second, registry=server_app.registry()) as b:
        done = await b.resume(wf.id, {"approver": "ana"})
        again = await b.start_workflow("Refund", {"amount": 999}, idempotency_key="r-1")
        audit = await b.get_audit_log(wf.id)
    assert done.status == "COMPLETED" and done.state.paid and done.state.approver == "ana"
    assert again.id == wf.id and again.status == "COMPLETED"
    assert [a.step_name for a in audit if a.event_type == "STEP_COMPLETED"] == [
        "Hold",
        "Approve",
        "Pay",
    ]


async def test_a_failing_step_rolls_back_through_the_server_store(stores):
    """A step that raises compensates the earlier steps and the workflow ends FAILED_ROLLED_BACK, listed as such."""
    first, _ = stores
    async with WorkflowEngine(persistence=first, registry=server_app.registry()) as engine:
        wf = await engine.run((await engine.start_workflow("Refund", {"amount": 500})).id)
        wf = await engine.resume(wf.id, {"approver": "bo"})
        listed = await engine.list_workflows(status="FAILED_ROLLED_BACK")
    assert wf.status == "FAILED_ROLLED_BACK" and wf.state.held is False
    assert [w.id for w in listed] == [wf.id]

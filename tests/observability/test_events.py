"""EventPublisherObserver: lifecycle hooks read back from a real Redis Stream."""

from __future__ import annotations

import json
import logging

import obs_app
import pytest
import redis.asyncio as aioredis
from providers.stores import unique_prefix

from ruvon_edge import WorkflowEngine
from ruvon_edge.implementations.observability.events import EventPublisherObserver
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

pytestmark = pytest.mark.services


@pytest.fixture
async def stream(redis_url):
    """A stream name of this test only, deleted afterwards; yields (name, client)."""
    name = f"{unique_prefix()}:events"
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield name, client
    await client.delete(name)
    await client.aclose()


async def _entries(client, name: str) -> list[dict]:
    return [fields for _, fields in await client.xrange(name)]


async def test_every_hook_publishes_the_documented_fields(redis_url, stream):
    """Each of the ten hooks appends one entry carrying event, workflow_id, ts and its own arguments as strings."""
    name, client = stream
    obs = EventPublisherObserver(redis_url, stream=name)
    await obs.on_workflow_started("w1", "Order")
    await obs.on_step_executed("w1", "Reserve", {"reserved": True, "n": 2}, 12.5)
    await obs.on_workflow_status_changed("w1", "ACTIVE", "WAITING_HUMAN")
    await obs.on_workflow_paused("w1", "Review", "needs approval")
    await obs.on_workflow_resumed("w1", "Review", {"approved": True})
    await obs.on_compensation_started("w1", "Reserve", 0)
    await obs.on_compensation_completed("w1", "Reserve", False, "stock service down")
    await obs.on_child_workflow_started("w1", "c1", "Kyc")
    await obs.on_workflow_failed("w1", "card declined")
    await obs.on_workflow_completed("w2")
    await obs.close()
    entries = await _entries(client, name)
    assert all(e["ts"].endswith("+00:00") for e in entries)
    for e in entries:
        del e["ts"]
    assert entries == [
        {"event": "workflow_started", "workflow_id": "w1", "workflow_type": "Order"},
        {"event": "step_executed", "workflow_id": "w1", "step_name": "Reserve", "result": '{"reserved":true,"n":2}',
         "duration_ms": "12.5"},
        {"event": "workflow_status_changed", "workflow_id": "w1", "old_status": "ACTIVE", "new_status": "WAITING_HUMAN"},
        {"event": "workflow_paused", "workflow_id": "w1", "step_name": "Review", "reason": "needs approval"},
        {"event": "workflow_resumed", "workflow_id": "w1", "step_name": "Review", "resume_data": '{"approved":true}'},
        {"event": "compensation_started", "workflow_id": "w1", "step_name": "Reserve", "step_index": "0"},
        {"event": "compensation_completed", "workflow_id": "w1", "step_name": "Reserve", "success": "false",
         "error": "stock service down"},
        {"event": "child_workflow_started", "workflow_id": "w1", "parent_id": "w1", "child_id": "c1", "child_type": "Kyc"},
        {"event": "workflow_failed", "workflow_id": "w1", "error": "card declined"},
        {"event": "workflow_completed", "workflow_id": "w2"},
    ]  # fmt: skip


async def test_stream_stays_bounded(redis_url, stream):
    """Publishing far more entries than maxlen leaves a stream trimmed near maxlen that keeps the newest entries."""
    name, client = stream
    obs = EventPublisherObserver(redis_url, stream=name, maxlen=50)
    for n in range(1000):
        await obs.on_workflow_completed(f"w{n}")
    await obs.close()
    length = await client.xlen(name)
    assert 50 <= length <= 200
    [(_, last)] = await client.xrevrange(name, count=1)
    assert last["workflow_id"] == "w999"


async def test_payloads_can_be_reduced_to_their_keys(redis_url, stream):
    """With include_data=False a step result is published as its key names only, and long values are cut."""
    name, client = stream
    obs = EventPublisherObserver(redis_url, stream=name, include_data=False)
    await obs.on_step_executed("w1", "Login", {"password": "hunter2", "user": "ana"})
    capped = EventPublisherObserver(redis_url, stream=name, max_value_chars=20)
    await capped.on_step_executed("w1", "Big", {"blob": "x" * 500})
    await obs.close()
    await capped.close()
    first, second = await _entries(client, name)
    assert json.loads(first["result"]) == ["password", "user"] and "hunter2" not in str(first)
    assert len(second["result"]) == 20 and second["result"].endswith("…")


async def test_redis_outage_is_logged_not_raised(caplog):
    """When Redis is unreachable every hook returns normally and a warning names the event and the stream."""
    obs = EventPublisherObserver("redis://127.0.0.1:1/0", stream="ruvon:nowhere", socket_timeout=1)
    with caplog.at_level(logging.WARNING, logger="ruvon_edge.implementations.observability.events"):
        await obs.on_workflow_started("w1", "Order")
        await obs.on_workflow_failed("w1", RuntimeError("boom"))
    await obs.close()
    messages = [r.getMessage() for r in caplog.records]
    assert (
        len(messages) == 2
        and "workflow_started of workflow w1 to stream ruvon:nowhere" in messages[0]
    )


async def test_engine_run_publishes_its_lifecycle(redis_url, stream, tmp_path):
    """Running a completing and a failing saga through the engine publishes their steps, compensation and outcome in order."""
    name, client = stream
    obs = EventPublisherObserver(redis_url, stream=name)
    store = SQLitePersistenceProvider(str(tmp_path / "edge.db"))
    async with WorkflowEngine(
        persistence=store, registry=obs_app.registry(), observer=obs
    ) as engine:
        ok = await engine.run((await engine.start_workflow("Charge", {"amount": 5})).id)
        bad = await engine.run((await engine.start_workflow("Charge", {"amount": 500})).id)
    await obs.close()
    assert (ok.status, bad.status) == ("COMPLETED", "FAILED_ROLLED_BACK")
    entries = await _entries(client, name)
    ok_events = [
        (e["event"], e.get("step_name")) for e in entries if e["workflow_id"] == str(ok.id)
    ]
    assert ("workflow_started", None) in ok_events and ok_events[-1] == ("workflow_completed", None)
    assert [s for ev, s in ok_events if ev == "step_executed"] == ["Reserve", "Pay"]
    bad_events = iter(e for e in entries if e["workflow_id"] == str(bad.id))
    expected = [
        "workflow_started",
        "step_executed",
        "compensation_started",
        "compensation_completed",
        "workflow_failed",
    ]
    seen = [next(e for e in bad_events if e["event"] == ev) for ev in expected]  # in this order
    assert seen[3]["success"] == "true" and "card declined" in seen[4]["error"]

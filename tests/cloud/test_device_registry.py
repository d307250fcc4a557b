"""The device registry, conflicts and the read methods, on both stores (SQLite file and PostgreSQL)."""

from __future__ import annotations

import sqlite3
import time
import uuid

from ruvon_cloud.sqlite_store import SQLiteStore
from sync_agent.protocol import AgentHealth, WireAuditLog, WireWorkflow


def _wf(wid: str | None = None, version: int = 1, **over) -> WireWorkflow:
    fields = {"id": wid or str(uuid.uuid4()), "workflow_type": "Payment", "status": "COMPLETED",
              "state": {"amount": 5}, "created_at": "t0", "updated_at": "t1", "sync_version": version}  # fmt: skip
    return WireWorkflow(**{**fields, **over})


def _audit(wid: str, n: int) -> WireAuditLog:
    return WireAuditLog(
        audit_id=f"{wid}-{n}", workflow_id=wid, event_type="STEP", recorded_at=f"t{n}"
    )


HEALTH = AgentHealth(version="0.2.0", backlog=12, oldest_pending_age_s=30.5, quarantined=1,
                     last_error="timeout", clock_offset_s=-0.4)  # fmt: skip


async def test_a_batch_updates_the_registry_in_its_own_transaction(store):
    """A batch with agent health sets first/last seen, the last batch, totals stored and the reported health."""
    await store.add_key("rk_1", "dev-1")
    [before] = await store.devices()
    assert before["first_seen_at"] is None and before["stale"] is True and before["workflows"] == 0
    wf = _wf()
    stored = await store.ingest("dev-1", "b-1", [wf], [_audit(wf.id, 1), _audit(wf.id, 2)], HEALTH)
    assert (stored.workflows, stored.audit_logs, stored.duplicates, stored.conflicts) == (
        1,
        2,
        0,
        0,
    )
    await store.ingest("dev-1", "b-2", [wf], [_audit(wf.id, 2)])  # a resend adds nothing
    [dev] = await store.devices()
    assert dev["device_id"] == "dev-1" and dev["last_batch_id"] == "b-2"
    assert (dev["workflows"], dev["audit_logs"]) == (1, 2) == tuple((await store.counts()).values())
    assert dev["first_seen_at"] <= dev["last_seen_at"] == dev["last_batch_at"]
    assert (dev["agent_version"], dev["backlog"], dev["oldest_pending_age_s"], dev["quarantined"],
            dev["last_error"], dev["clock_offset_s"]) == ("0.2.0", 12, 30.5, 1, "timeout", -0.4)  # fmt: skip
    assert dev["stale"] is False and dev["last_refusal"] is None


async def test_a_heartbeat_marks_an_idle_device_alive(store):
    """A heartbeat alone makes a device seen (not stale) and records its health."""
    await store.add_key("rk_1", "dev-1")
    await store.heartbeat("dev-1", AgentHealth(version="0.2.0", backlog=0))
    [dev] = await store.devices(stale_after=60)
    assert dev["stale"] is False and dev["backlog"] == 0 and dev["last_batch_id"] is None
    [later] = await store.devices(stale_after=60, now=time.time() + 61)
    assert later["stale"] is True


async def test_refusals_are_kept_for_registered_devices_only(store):
    """A refusal of a registered device is listed and becomes its last refusal; one naming an unknown device is not stored."""
    await store.add_key("rk_1", "dev-1")
    await store.record_refusal("dev-1", 401, "bad signature", "rk_1")
    await store.record_refusal("nobody", 401, "unknown key id", "rk_x")
    [ref] = await store.refusals()
    assert (ref["device_id"], ref["status"], ref["reason"], ref["key_id"]) == (
        "dev-1",
        401,
        "bad signature",
        "rk_1",
    )
    [dev] = await store.devices()
    assert (
        dev["last_refusal"]["reason"] == "bad signature" and dev["last_refusal"]["key_id"] == "rk_1"
    )
    assert await store.refusals(device_id="nobody") == []


async def test_same_key_with_other_content_is_a_conflict_and_both_copies_are_kept(store):
    """A second copy of (id, sync_version) with different content, across batches or within one, is kept and flagged."""
    wid, other = str(uuid.uuid4()), str(uuid.uuid4())
    first = await store.ingest("dev-1", "b-1", [_wf(wid, state={"amount": 5})], [])
    again = await store.ingest(
        "dev-1", "b-2", [_wf(wid, state={"amount": 7}), _wf(wid, state={"amount": 5})], []
    )
    within = await store.ingest(
        "dev-1", "b-3", [_wf(other, state={"n": 1}), _wf(other, state={"n": 2})], []
    )
    assert (first.conflicts, again.conflicts, again.duplicates, within.conflicts) == (0, 1, 1, 1)
    flagged = await store.workflows(conflict=True)
    assert {w["id"] for w in flagged} == {wid, other}
    shown = await store.workflow(wid)
    assert shown["state"] == {"amount": 5} and shown["conflict"] is True
    assert [c["record"]["state"] for c in shown["conflicts"]] == [{"amount": 7}]
    assert (await store.devices())[0]["conflicts"] == 2


async def test_workflow_search_filters_and_pages(store):
    """Workflows are found by device, status (one or several), type, receipt time, id and idempotency key."""
    t0 = time.time()
    await store.ingest("dev-1", "b-1", [_wf(status="FAILED"), _wf(workflow_type="Refund")], [])
    await store.ingest("dev-2", "b-2", [_wf(idempotency_key="A1"), _wf(status="CANCELLED")], [])
    assert len(await store.workflows()) == 4 and await store.count_workflows() == 4
    assert {w["device_id"] for w in await store.workflows(device_id="dev-2")} == {"dev-2"}
    assert [w["status"] for w in await store.workflows(status="FAILED")] == ["FAILED"]
    assert len(await store.workflows(status=["FAILED", "CANCELLED"])) == 2
    assert await store.count_workflows(status=["FAILED", "CANCELLED"], device_id="dev-1") == 1
    assert [w["workflow_type"] for w in await store.workflows(workflow_type="Refund")] == ["Refund"]
    assert len(await store.workflows(since=t0, until=time.time() + 1)) == 4
    assert await store.workflows(since=time.time() + 10) == []
    [keyed] = await store.workflows(idempotency_key="A1")
    assert (await store.workflows(workflow_id=keyed["id"]))[0]["idempotency_key"] == "A1"
    page1, page2 = await store.workflows(limit=3), await store.workflows(limit=3, offset=3)
    assert (
        len(page1) == 3
        and len(page2) == 1
        and not {w["id"] for w in page1} & {w["id"] for w in page2}
    )


async def test_one_workflow_with_its_versions_and_audit_trail(store):
    """show: the latest version, every version held, and the audit rows in recorded order."""
    wid = str(uuid.uuid4())
    await store.ingest(
        "dev-1", "b-1", [_wf(wid, 1, status="FAILED")], [_audit(wid, 2), _audit(wid, 1)]
    )
    await store.ingest("dev-1", "b-2", [_wf(wid, 2)], [_audit(wid, 3)])
    shown = await store.workflow(wid)
    assert shown["sync_version"] == 2 and [v["sync_version"] for v in shown["versions"]] == [1, 2]
    assert [a["audit_id"] for a in await store.audit_logs(wid, "dev-1")] == [
        f"{wid}-{n}" for n in (1, 2, 3)
    ]
    assert await store.workflow("no-such-id") is None


async def test_keys_can_be_listed_and_revoked(store):
    """A revoked key no longer authenticates but stays listed with its revocation time."""
    await store.add_key("rk_1", "dev-1")
    await store.add_key("rk_2", "dev-1")
    assert await store.revoke_key("rk_1") is True and await store.revoke_key("rk_1") is False
    assert (
        await store.device_for_key("rk_1") is None and await store.device_for_key("rk_2") == "dev-1"
    )
    keys = {k["key_id"]: k for k in await store.keys("dev-1")}
    assert keys["rk_1"]["revoked_at"] is not None and keys["rk_2"]["revoked_at"] is None


async def test_activity_counts_what_a_device_sent_per_window(store):
    """activity() buckets a device's workflows and audit rows by receipt time."""
    since = time.time() - 5
    wf = _wf()
    await store.ingest("dev-1", "b-1", [wf], [_audit(wf.id, 1), _audit(wf.id, 2)])
    [bucket] = await store.activity("dev-1", since, 3600)
    assert (bucket["workflows"], bucket["audit_logs"]) == (1, 2) and bucket["at"] == since


async def test_a_store_of_schema_1_is_migrated_with_its_registry(tmp_path):
    """A store written before the registry existed gains it, with totals counted from what it holds."""
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE device_keys (key_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL);"
            "CREATE TABLE workflows (device_id TEXT NOT NULL, id TEXT NOT NULL, sync_version BIGINT NOT NULL, "
            "workflow_type TEXT NOT NULL, workflow_version TEXT, status TEXT NOT NULL, state TEXT NOT NULL, current_step TEXT, "
            "parent_id TEXT, idempotency_key TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, completed_at TEXT, "
            "batch_id TEXT NOT NULL, received_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, id, sync_version));"
            "INSERT INTO device_keys VALUES ('rk_old', 'dev-1', 1.0);"
            "INSERT INTO workflows VALUES ('dev-1', 'w1', 1, 'Payment', NULL, 'COMPLETED', '{}', NULL, NULL, NULL, 't0', 't1', NULL, 'b0', 2.0);"
        )
    store = SQLiteStore(str(db))
    await store.initialize()
    try:
        [dev] = await store.devices()
        assert (dev["device_id"], dev["workflows"], dev["registered_at"]) == ("dev-1", 1, 1.0)
        assert await store.device_for_key("rk_old") == "dev-1"
        resent = await store.ingest("dev-1", "b1", [_wf("w1", 1, state={"x": 1})], [])
        assert (resent.duplicates, resent.conflicts) == (1, 0)  # no digest was kept then
    finally:
        await store.close()

"""Both receiver stores: idempotent upserts per (device, id, sync_version) and (device, audit_id), keys, nonces."""

from __future__ import annotations

import time
import uuid

import pytest

from ruvon_cloud.store import open_store
from sync_agent.protocol import WireAuditLog, WireWorkflow


def _wf(wid: str, version: int) -> WireWorkflow:
    return WireWorkflow(id=wid, workflow_type="Payment", status="COMPLETED", state={"a": 1}, created_at="t0",
                        updated_at="t1", sync_version=version)  # fmt: skip


async def test_ingest_is_idempotent_and_keeps_each_version(store):
    """The same batch twice stores each record once; a new sync_version of a workflow is a new row."""
    wid = str(uuid.uuid4())
    audit = WireAuditLog(audit_id="a-1", workflow_id=wid, event_type="E", recorded_at="t1")
    await store.ingest("dev-1", "b1", [_wf(wid, 1)], [audit])
    await store.ingest("dev-1", "b2", [_wf(wid, 1)], [audit])
    await store.ingest("dev-1", "b3", [_wf(wid, 2)], [])
    await store.ingest("dev-2", "b4", [_wf(wid, 1)], [audit])
    assert await store.counts("dev-1") == {"workflows": 2, "audit_logs": 1}
    assert await store.counts() == {"workflows": 3, "audit_logs": 2}


async def test_keys_and_nonces(store):
    """A registered key maps to its device; a nonce is accepted once per key."""
    await store.add_key("rk_1", "dev-1")
    assert await store.device_for_key("rk_1") == "dev-1"
    assert await store.device_for_key("rk_2") is None
    now = int(time.time())
    assert await store.use_nonce("rk_1", "n1", now) is True
    assert await store.use_nonce("rk_1", "n1", now) is False
    assert await store.use_nonce("rk_2", "n1", now) is True


def test_unknown_store_urls_are_refused():
    """A store URL that is neither sqlite:/// nor postgresql:// is a clear ValueError."""
    with pytest.raises(ValueError, match="unsupported store URL"):
        open_store("mysql://x")

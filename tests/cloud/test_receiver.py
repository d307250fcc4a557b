"""The receiver over real HTTP: authentication, replay and tamper refusal, size bounds, per-record validation."""

from __future__ import annotations

import gzip
import json
import sqlite3
import time
import uuid

import httpx
import pytest
from cloud.served import audit as _audit
from cloud.served import workflow as _workflow
from sync.harness import DEVICE, Receiver

from sync_agent import protocol

PATH = f"/v1/devices/{DEVICE}/batches"


def _body(workflows=(), audits=(), batch_id=None) -> tuple[str, bytes]:
    batch_id = batch_id or str(uuid.uuid4())
    doc = {"batch_id": batch_id, "device_id": DEVICE, "sent_at": "2026-01-01T00:00:02Z",
           "workflows": list(workflows), "audit_logs": list(audits)}  # fmt: skip
    return batch_id, json.dumps(doc).encode()


def _post(
    rx: Receiver, body: bytes, batch_id: str, *, secret=None, key_id=None, now=None, extra=None
):
    headers = protocol.signed_headers(
        key_id or rx.key_id, secret or rx.secret, PATH, body, batch_id, now=now
    )
    headers.update(extra or {})
    return httpx.post(rx.url + PATH, content=body, headers=headers)


@pytest.fixture
def rx(tmp_path):
    with Receiver(tmp_path, max_body_bytes=64_000, max_decoded_bytes=256_000) as receiver:
        yield receiver


def test_health_answers_without_auth(rx):
    """GET /v1/health is 200 {"status": "ok"} with no credentials."""
    r = httpx.get(rx.url + "/v1/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_signed_batch_is_stored_and_acked_with_the_contract_shape(rx):
    """A signed batch is committed and answered with exactly the v1 response fields."""
    wf = _workflow()
    batch_id, body = _body([wf], [_audit(wf["id"])])
    r = _post(rx, body, batch_id)
    assert r.status_code == 200
    doc = r.json()
    assert set(doc) == {"batch_id", "acked_workflow_ids", "acked_audit_ids", "rejected"}
    assert (
        doc["batch_id"] == batch_id
        and doc["acked_workflow_ids"] == [wf["id"]]
        and doc["rejected"] == []
    )
    assert rx.rows("workflows") == [(wf["id"], 3)] and len(rx.rows("audit_logs")) == 1


def test_a_resent_batch_is_acked_again_and_stored_once(rx):
    """Sending the same records twice (fresh signature) acks them both times and stores them once."""
    wf = _workflow()
    audit = _audit(wf["id"])
    batch_id, body = _body([wf], [audit])
    first, second = _post(rx, body, batch_id), _post(rx, body, batch_id)
    assert (
        first.json()["acked_audit_ids"] == second.json()["acked_audit_ids"] == [audit["audit_id"]]
    )
    assert len(rx.rows("workflows")) == 1 and len(rx.rows("audit_logs")) == 1


def test_replay_tamper_stale_and_unknown_key_are_refused_and_store_nothing(rx):
    """A replayed request, a tampered body, a stale timestamp, a wrong secret or unknown key get 401; nothing is stored."""
    batch_id, body = _body([_workflow()])
    headers = protocol.signed_headers(rx.key_id, rx.secret, PATH, body, batch_id)
    assert httpx.post(rx.url + PATH, content=body, headers=headers).status_code == 200
    replay = httpx.post(rx.url + PATH, content=body, headers=headers)
    assert replay.status_code == 401 and "replay" in replay.json()["error"]

    batch_id, body = _body([_workflow()])
    headers = protocol.signed_headers(rx.key_id, rx.secret, PATH, body, batch_id)
    tampered = body.replace(b'"amount": 5', b'"amount": 9')
    assert httpx.post(rx.url + PATH, content=tampered, headers=headers).status_code == 401
    # The timestamp travels in whole seconds: 302 s keeps clear of the ±300 s edge.
    assert _post(rx, body, batch_id, now=time.time() - 302).status_code == 401
    assert _post(rx, body, batch_id, now=time.time() + 302).status_code == 401
    assert _post(rx, body, batch_id, secret="0" * 64).status_code == 401
    assert _post(rx, body, batch_id, key_id="rk_unknown").status_code == 401
    assert httpx.post(rx.url + PATH, content=body).status_code == 401
    assert len(rx.rows("workflows")) == 1


def test_a_key_of_one_device_cannot_post_for_another(rx):
    """A valid signature on another device's path is 403 and stores nothing."""
    other = "/v1/devices/pos-99/batches"
    batch_id, body = _body([_workflow()])
    headers = protocol.signed_headers(rx.key_id, rx.secret, other, body, batch_id)
    assert httpx.post(rx.url + other, content=body, headers=headers).status_code == 403
    assert rx.rows("workflows") == []


def test_bodies_over_the_limit_before_or_after_gzip_are_413(rx):
    """An oversized body and a gzip bomb are refused with 413 before anything is parsed or stored."""
    wf = _workflow(state={"pad": "x" * 70_000})
    batch_id, body = _body([wf])
    assert _post(rx, body, batch_id).status_code == 413
    bomb = gzip.compress(json.dumps({"pad": "0" * 5_000_000}).encode())
    assert len(bomb) < 64_000
    r = _post(rx, bomb, batch_id, extra={"Content-Encoding": "gzip"})
    assert r.status_code == 413
    assert rx.rows("workflows") == []


def test_gzip_bodies_are_accepted(rx):
    """A gzip body signed as sent is decompressed and stored."""
    wf = _workflow()
    batch_id, body = _body([wf])
    r = _post(rx, gzip.compress(body), batch_id, extra={"Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json()["acked_workflow_ids"] == [wf["id"]]


def test_invalid_records_are_rejected_with_a_reason_and_the_rest_acked(rx):
    """A non-terminal status or a missing field is rejected non-retryably; valid records in the batch are stored."""
    good, running, broken = _workflow(), _workflow(status="ACTIVE"), _workflow()
    del broken["workflow_type"]
    bad_audit = _audit(good["id"])
    del bad_audit["recorded_at"]
    batch_id, body = _body([good, running, broken], [bad_audit, "not an object"])
    doc = _post(rx, body, batch_id).json()
    assert doc["acked_workflow_ids"] == [good["id"]] and doc["acked_audit_ids"] == []
    reasons = {(r["kind"], r["id"]): r for r in doc["rejected"]}
    assert "status" in reasons[("workflow", running["id"])]["reason"]
    assert "workflow_type" in reasons[("workflow", broken["id"])]["reason"]
    assert "recorded_at" in reasons[("audit", bad_audit["audit_id"])]["reason"]
    assert all(r["retryable"] is False for r in doc["rejected"]) and len(doc["rejected"]) == 4
    assert rx.rows("workflows") == [(good["id"], 3)]


def test_malformed_envelopes_are_400(rx):
    """Not JSON, a device mismatch or an Idempotency-Key that is not the batch id is a 400."""
    batch_id, body = _body([_workflow()])
    assert _post(rx, b"<html>", batch_id).status_code == 400
    wrong_device = body.replace(DEVICE.encode(), b"pos-99")
    assert _post(rx, wrong_device, batch_id).status_code == 400
    assert _post(rx, body, "other-batch").status_code == 400
    assert rx.rows("workflows") == []


def _registry(rx: Receiver) -> dict:
    """The device's registry row and its refusals, read with plain sqlite3."""
    with sqlite3.connect(rx.db) as conn:
        conn.row_factory = sqlite3.Row
        device = dict(
            conn.execute("SELECT * FROM devices WHERE device_id = ?", (DEVICE,)).fetchone()
        )
        refusals = [dict(r) for r in conn.execute("SELECT * FROM refusals ORDER BY at")]
    return {"device": device, "refusals": refusals}


def test_a_refused_batch_is_recorded_with_the_key_presented(rx):
    """A batch refused for its signature is answered 401 and kept as the device's last refusal."""
    batch_id, body = _body([_workflow()])
    assert _post(rx, body, batch_id, secret="0" * 64).status_code == 401
    seen = _registry(rx)
    assert [(r["status"], r["reason"], r["key_id"]) for r in seen["refusals"]] == [
        (401, "bad signature", rx.key_id)
    ]
    assert (
        seen["device"]["last_refusal_reason"] == "bad signature"
        and seen["device"]["workflows"] == 0
    )


def test_batch_health_and_heartbeat_reach_the_registry(rx):
    """The optional agent field of a batch and a signed heartbeat update what the device reported; a bad heartbeat is 400."""
    wf = _workflow()
    batch_id, body = _body([wf])
    doc = json.loads(body)
    doc["agent"] = {"version": "0.2.0", "backlog": 7, "quarantined": 0}
    assert _post(rx, json.dumps(doc).encode(), batch_id).status_code == 200
    assert (_registry(rx)["device"]["backlog"], _registry(rx)["device"]["last_batch_id"]) == (
        7,
        batch_id,
    )
    path = protocol.heartbeat_path(DEVICE)
    beat = json.dumps({"agent": {"version": "0.2.0", "backlog": 0, "clock_offset_s": 0.2},
                       "sent_at": "2026-01-01T00:00:00Z"}).encode()  # fmt: skip
    headers = protocol.signed_headers(rx.key_id, rx.secret, path, beat, "hb-1")
    r = httpx.post(rx.url + path, content=beat, headers=headers)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    device = _registry(rx)["device"]
    assert (device["backlog"], device["clock_offset_s"], device["workflows"]) == (0, 0.2, 1)
    junk = b'{"sent_at": "x"}'
    headers = protocol.signed_headers(rx.key_id, rx.secret, path, junk, "hb-2")
    assert httpx.post(rx.url + path, content=junk, headers=headers).status_code == 400

"""Field faults against a real `ruvon-cloud serve`: unstorable records, half-sent bodies, bombs, odd headers, a full disk."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
import subprocess

import httpx
import pytest
from cloud.served import Served, batch_body, cloud_cli, workflow
from providers.stores import drop_schema, unique_schema

from sync_agent import protocol

UNSTORABLE = {
    "nul": ({"note": "till\x00 7"}, 3, "NUL"),
    "surrogate": ({"note": "\ud800"}, 3, "surrogate"),
    "int64": ({"amount": 1}, 2**63, "64-bit"),
    "deep": ({"nest": json.loads("[" * 250 + "]" * 250)}, 3, "nested deeper"),
}


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """A fresh store URL of each kind (PostgreSQL in a schema of its own, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cloud.db'}"
        return
    dsn = request.getfixturevalue("postgres_dsn")
    schema = unique_schema()
    yield f"{dsn}?schema={schema}"
    asyncio.run(drop_schema(dsn, schema))


def test_records_the_store_cannot_hold_are_rejected_alone_and_the_rest_stored(tmp_path, store_url):
    """NUL (on PostgreSQL), a lone surrogate, sync_version >= 2^63 and 250-deep state are rejected by name, never a 503."""
    with Served(tmp_path, store=store_url) as rx:
        good = workflow()
        bad = {
            name: workflow(state=state, sync_version=v)
            for name, (state, v, _) in UNSTORABLE.items()
        }
        r = rx.send([good, *bad.values()])
        assert r.status_code == 200, r.text
        doc = r.json()
        reasons = {x["id"]: x for x in doc["rejected"]}
        postgres = store_url.startswith("postgresql")
        for name, (_, _, text) in UNSTORABLE.items():
            if name == "nul" and not postgres:
                assert bad[name]["id"] in doc["acked_workflow_ids"]  # SQLite holds U+0000
                continue
            assert (
                text in reasons[bad[name]["id"]]["reason"]
                and reasons[bad[name]["id"]]["retryable"] is False
            )
        assert good["id"] in doc["acked_workflow_ids"]
        again = rx.send(
            [good, *bad.values()]
        )  # the same batch again: the same answer, nothing stored twice
        assert again.status_code == 200 and len(again.json()["rejected"]) == len(doc["rejected"])
        stored = json.loads(
            cloud_cli("workflows", "--store", store_url, "--json", env=rx.env).stdout
        )
        assert {w["id"] for w in stored} == set(doc["acked_workflow_ids"])


def test_the_same_key_with_other_content_in_one_batch_is_kept_and_shown_as_a_conflict(tmp_path):
    """Two copies of one (id, sync_version) in one batch are both acked, both kept, and flagged for the operator."""
    with Served(tmp_path) as rx:
        first = workflow(state={"amount": 5})
        second = {**first, "state": {"amount": 500}}
        r = rx.send([first, second])
        assert r.status_code == 200 and r.json()["acked_workflow_ids"] == [first["id"], first["id"]]
        [listed] = json.loads(cloud_cli("workflows", "--store", rx.store, "--json").stdout)
        assert listed["conflict"] is True
        shown = json.loads(cloud_cli("show", first["id"], "--store", rx.store, "--json").stdout)
        assert shown["state"] == {"amount": 5} and [
            c["record"]["state"] for c in shown["conflicts"]
        ] == [{"amount": 500}]
        assert "CONFLICT" in cloud_cli("show", first["id"], "--store", rx.store).stdout


def _half_sent(rx: Served, key_id: str) -> socket.socket:
    """A POST whose headers (with a known key id) arrived but whose body never will."""
    sock = socket.create_connection(("127.0.0.1", rx.port))
    head = (f"POST /v1/devices/{rx.device}/batches HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            f"X-Ruvon-Key-Id: {key_id}\r\nX-Ruvon-Timestamp: {protocol.signed_headers(key_id, 'x', '/', b'', 'b')['X-Ruvon-Timestamp']}\r\n"
            "X-Ruvon-Nonce: n\r\nX-Ruvon-Signature: v1=00\r\n\r\n{\"batch")  # fmt: skip
    sock.sendall(head.encode())
    return sock


def test_half_sent_requests_do_not_starve_a_device_and_hit_the_body_deadline(tmp_path):
    """Twenty half-sent requests (more than the 8 slots) leave a real device's batch served; each then gets 408."""
    with Served(tmp_path, "--body-timeout", "3", "--max-inflight", "8") as rx:
        stuck = [_half_sent(rx, rx.key_id) for _ in range(20)]
        try:
            r = rx.send([workflow()])
            assert r.status_code == 200 and len(r.json()["acked_workflow_ids"]) == 1
            for sock in stuck:
                sock.settimeout(60)
                answer = sock.recv(4096)
                assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        finally:
            for sock in stuck:
                sock.close()
        assert rx.send([workflow()]).status_code == 200


def test_gzip_bombs_and_record_floods_are_refused_before_they_are_parsed(tmp_path):
    """A gzip body that decodes past the bound is 413, and so is a batch of more records than allowed; the device goes on."""
    with Served(
        tmp_path, "--max-decoded-bytes", "4000000", "--decoded-budget-bytes", "4000000"
    ) as rx:
        batch_id, body = batch_body(rx.device, [workflow(state={"pad": "0" * 5_000_000})])
        bomb = gzip.compress(body)
        assert rx.post(bomb, batch_id, extra={"Content-Encoding": "gzip"}).status_code == 413
        flood = [{"audit_id": str(i)} for i in range(50_001)]
        batch_id, body = batch_body(rx.device, [], flood)
        r = rx.post(gzip.compress(body), batch_id, extra={"Content-Encoding": "gzip"})
        assert r.status_code == 413 and "records" in r.json()["error"]
        assert rx.send([workflow()]).status_code == 200


def test_odd_headers_and_absurd_nesting_are_client_errors(tmp_path):
    """A timestamp of non-ASCII digits is 401 and a batch nested 100,000 deep is 400; neither is a 500."""
    with Served(tmp_path) as rx:
        batch_id, body = batch_body(rx.device, [workflow()])
        path = f"/v1/devices/{rx.device}/batches"
        headers = protocol.signed_headers(rx.key_id, rx.secret, path, body, batch_id)
        headers = {k: v.encode() for k, v in headers.items()}
        headers[protocol.H_TIMESTAMP] = "\u00b2\u00b3".encode("latin-1")  # superscript digits
        r = httpx.post(rx.url + path, content=body, headers=headers)
        assert r.status_code == 401 and "timestamp" in r.json()["error"]
        deep = (
            b'{"batch_id": "b", "device_id": "pos-1", "workflows": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}"
        )
        r = rx.post(deep, "b")
        assert r.status_code == 400 and "nested too deeply" in r.json()["error"]
    assert not any(line["level"] == "error" for line in rx.logs())


@pytest.fixture
def small_disk(tmp_path):
    """A real 3 MiB tmpfs (skipped where mounting is not permitted, mandatory under RUVON_REQUIRE_SERVICES=1)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here: {done.stderr.strip()}"
        if os.environ.get("RUVON_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + "; RUVON_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(reason)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_receiver_disk_is_503_logged_as_enospc_and_recovers(tmp_path, small_disk):
    """On a really full disk, batches get 503 + Retry-After, the log names ENOSPC (not "cannot rollback"), and space back heals it."""
    with Served(tmp_path, store=f"sqlite:///{small_disk / 'cloud.db'}") as rx:
        stored, r = 0, rx.send([workflow()])
        while r.status_code == 200:
            stored += 1
            assert stored < 100, "the 3 MiB disk never filled"
            r = rx.send([workflow(state={"pad": os.urandom(50_000).hex()}) for _ in range(3)])
        assert r.status_code == 503 and int(r.headers["retry-after"]) > 0, r.text
        failures = [line for line in rx.logs() if line["event"] == "store_unavailable"]
        assert failures and "ENOSPC" in failures[-1]["error"], failures
        assert "cannot rollback" not in rx.log_path.read_text()
        subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
        r = rx.send([workflow()])
        assert r.status_code == 200, r.text
    assert stored > 0

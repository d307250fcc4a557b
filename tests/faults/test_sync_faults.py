"""Sync under faults, against the real receiver behind a fault-injecting proxy on 127.0.0.1.

Issue 4's tests 1, 2, 3, 6, 7, 8 and 10 (kill -9 and SIGTERM are in test_sync_kill.py).
"""

from __future__ import annotations

import gzip
import json
import secrets
import sqlite3

import pytest
from sync.harness import (
    FaultProxy,
    Receiver,
    agent_settings,
    drain,
    local_ids,
    make_finished,
    run_in_thread,
)

from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon_edge.providers.persistence import Transition
from sync_agent import protocol


async def _device(tmp_path, n=40, audit_per=5, **kw):
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        ids = await make_finished(p, n, audit_per, **kw)
    return db, ids


def _records(db) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM workflows").fetchone()[0], conn.execute(
            "SELECT count(*) FROM audit_log"
        ).fetchone()[0]


async def test_ack_lost_after_commit_is_redelivered_once_and_the_device_ends_empty(tmp_path):
    """The receiver commits but the answer is lost (dropped, then too slow): nothing is deleted; the next cycle acks it all once."""
    db, ids = await _device(tmp_path)
    with Receiver(tmp_path) as rx:
        for action in ("forward-drop", ("sleep-forward", 1.5)):
            with FaultProxy(rx.url, lambda n, req, a=action: a) as proxy:
                report = await drain(agent_settings(db, proxy.url, rx, attempts=1, timeout=1.0))
            assert not report.ok and report.deleted == 0
            assert local_ids(db) == set(ids)
        assert len(rx.rows("workflows")) == 40  # committed while the device heard nothing
        report = await drain(agent_settings(db, rx.url, rx))
        assert report.ok and report.deleted == 40
        assert (
            sorted(r[0] for r in rx.rows("workflows")) == sorted(ids)
            and len(rx.rows("audit_logs")) == 200
        )
    assert _records(db) == (0, 0)


async def test_5xx_for_a_while_then_recovery_delivers_everything_once(tmp_path):
    """Under 500/503 nothing is lost, backoff and Retry-After are observed, last success stays put; recovery delivers once."""
    db, ids = await _device(tmp_path, n=30)
    failing = {"on": True}

    def script(n, req):
        if not failing["on"]:
            return "forward"
        if n % 2:
            return ("respond", 503, b'{"error": "busy"}', {"Retry-After": "1"})
        return ("respond", 500, b"oops", {})

    with Receiver(tmp_path) as rx, FaultProxy(rx.url, script) as proxy:
        report = await drain(
            agent_settings(db, proxy.url, rx, attempts=4, backoff_base=0.1, backoff_max=2.0)
        )
        assert not report.ok and local_ids(db) == set(ids) and rx.rows("workflows") == []
        gaps = [b.at - a.at for a, b in zip(proxy.seen, proxy.seen[1:], strict=False)]
        assert len(proxy.seen) == 4
        assert gaps[0] >= 0.95 and gaps[2] >= 0.95  # after a 503 with Retry-After: 1
        assert gaps[1] <= 0.5  # full jitter under the cap after the 500
        async with SQLitePersistenceProvider(db) as p:
            assert await p.get_edge_sync_state("last_success_at") is None
            assert "503" in (
                await p.get_edge_sync_state("last_error")
            ) or "500" in await p.get_edge_sync_state("last_error")
        failing["on"] = False
        report = await drain(agent_settings(db, proxy.url, rx))
        assert report.ok and report.deleted == 30
        assert (
            sorted(r[0] for r in rx.rows("workflows")) == sorted(ids)
            and len(rx.rows("audit_logs")) == 150
        )
        async with SQLitePersistenceProvider(db) as p:
            assert await p.get_edge_sync_state("last_success_at") is not None


async def test_receiver_commits_part_of_a_batch_then_fails_without_duplicates_or_stall(tmp_path):
    """Half a batch is stored and the request fails with 500; the retry stores the rest, every record exactly once."""
    db, ids = await _device(tmp_path, n=40)

    def script(n, req):
        if n != 1:
            return "forward"
        raw = (
            gzip.decompress(req.body) if req.headers.get("Content-Encoding") == "gzip" else req.body
        )
        doc = json.loads(raw)
        doc["workflows"], doc["audit_logs"] = doc["workflows"][:10], doc["audit_logs"][:25]
        body = json.dumps(doc).encode()
        headers = protocol.signed_headers(rx.key_id, rx.secret, req.path, body, doc["batch_id"])
        status, _, _ = proxy.forward(req, body, {**headers, "Content-Type": "application/json"})
        assert status == 200
        return ("respond", 500, b"crashed after commit", {})

    with Receiver(tmp_path) as rx, FaultProxy(rx.url, script) as proxy:
        report = await drain(agent_settings(db, proxy.url, rx))
        assert report.ok and report.deleted == 40
        assert (
            sorted(r[0] for r in rx.rows("workflows")) == sorted(ids)
            and len(rx.rows("audit_logs")) == 200
        )
    assert _records(db) == (0, 0)


async def test_a_workflow_changed_in_flight_is_kept_and_resent(tmp_path):
    """A workflow retried or given a new audit row while its batch is in flight is not deleted as read; its new version follows."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        (annotated,) = await make_finished(p, 1, 2)
        (retried,) = await make_finished(p, 1, 2, status="FAILED")
        others = await make_finished(p, 10, 2)

    async def change():
        async with SQLitePersistenceProvider(db) as q:
            for wid, status in ((annotated, "COMPLETED"), (retried, "ACTIVE")):
                row = await q.load_workflow(wid)
                audit = [
                    {
                        "event_type": "CHANGED",
                        "step_name": None,
                        "old_status": row["status"],
                        "new_status": status,
                        "details": {},
                    }
                ]
                await q.commit(
                    [
                        Transition(
                            workflow={**row, "status": status},
                            expected_version=row["version"],
                            audit=audit,
                        )
                    ]
                )

    def script(n, req):
        return ("forward-then", lambda: run_in_thread(change)) if n == 1 else "forward"

    with Receiver(tmp_path) as rx, FaultProxy(rx.url, script) as proxy:
        report = await drain(agent_settings(db, proxy.url, rx))
        assert report.ok and local_ids(db) == {
            retried
        }  # running again: not terminal, kept, not sent
        assert _records(db) == (1, 1)  # its new audit row waits with it
        versions = sorted(v for wid, v in rx.rows("workflows") if wid == annotated)
        assert (
            len(versions) == 2 and versions[0] < versions[1]
        )  # the changed row came back in a later pass
        assert len(proxy.seen) >= 2
        assert (
            set(others) <= {r[0] for r in rx.rows("workflows")}
            and len(rx.rows("audit_logs")) == 2 * 12 + 1
        )


async def test_a_running_child_of_a_synced_parent_is_not_deleted(tmp_path):
    """The parent is synced and deleted; its child that is still ACTIVE stays on the device untouched."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        (parent,) = await make_finished(p, 1, 2)
        (child,) = await make_finished(p, 1, 2, status="ACTIVE", parent_id=parent)
    with Receiver(tmp_path) as rx:
        report = await drain(agent_settings(db, rx.url, rx))
        assert report.ok and report.deleted == 1
    assert local_ids(db) == {child} and _records(db) == (1, 2)


async def test_a_workflow_with_200_audit_rows_goes_only_after_all_200_are_acked(tmp_path):
    """With 150 of 200 audit acks the workflow stays; once the rest are acked (in passes of 50) it is deleted."""
    db, (wid,) = await _device(tmp_path, n=1, audit_per=200)

    unlucky: set[str] = set()

    def drop_50(doc):  # the same 50 audit acks get lost every time
        unlucky.update(() if unlucky else doc["acked_audit_ids"][150:])
        return {**doc, "acked_audit_ids": [a for a in doc["acked_audit_ids"] if a not in unlucky]}

    with Receiver(tmp_path) as rx:
        with FaultProxy(rx.url, response_filter=drop_50) as proxy:
            report = await drain(agent_settings(db, proxy.url, rx))
        assert report.deleted == 0 and _records(db) == (1, 50)
        report = await drain(agent_settings(db, rx.url, rx, audit_per_workflow=20))
        assert report.ok and report.deleted == 1 and _records(db) == (0, 0)
        assert len(rx.rows("audit_logs")) == 200


@pytest.mark.parametrize("poison", ["too-large-for-agent", "rejected"])
async def test_a_poison_record_is_quarantined_and_the_100_behind_it_are_delivered(tmp_path, poison):
    """One record that can never be accepted is quarantined (kept, counted); the 100 after it arrive in the same run."""
    db = tmp_path / "edge.db"
    kw: dict = {}
    async with SQLitePersistenceProvider(db) as p:
        if poison == "rejected":
            (bad,) = await make_finished(p, 1, 1, workflow_type="x" * 300)
        else:
            (bad,) = await make_finished(p, 1, 1, state={"blob": secrets.token_hex(60_000)})
        good = await make_finished(p, 100, 1)
    if poison == "too-large-for-agent":
        kw["batch_bytes"] = 50_000
    with Receiver(tmp_path) as rx:
        report = await drain(agent_settings(db, rx.url, rx, **kw))
        assert report.ok and report.quarantined == 1 and report.deleted == 100
        assert {r[0] for r in rx.rows("workflows")} == set(good)
    assert local_ids(db) == {bad}
    async with SQLitePersistenceProvider(db) as p:
        assert (await p.sync_backlog())["quarantined"] == 1


async def test_a_413_for_one_record_within_the_limit_keeps_it_pending_and_fails_the_cycle(tmp_path):
    """A receiver that accepts less than batch_bytes: the 100 small records arrive, the big one stays pending (not quarantined) and the cycle fails with 413."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        (big,) = await make_finished(p, 1, 1, state={"blob": secrets.token_urlsafe(60_000)})
        good = await make_finished(p, 100, 1)
    with Receiver(tmp_path, max_body_bytes=40_000) as rx:
        report = await drain(agent_settings(db, rx.url, rx))
        assert not report.ok and report.http_status == 413 and report.reason == "too_large"
        assert report.quarantined == 0 and report.deleted == 100
        assert {r[0] for r in rx.rows("workflows")} == set(good)
    assert local_ids(db) == {big}
    async with SQLitePersistenceProvider(db) as p:
        assert (await p.sync_backlog())["pending"] == 1


@pytest.mark.parametrize(
    "answer", [b"{}", b"<html><body>Welcome to Airport WiFi</body></html>", b'{"batch_id": "x", "acked_workflow_ids": ["'],
    ids=["empty-object", "captive-portal", "truncated"],
)  # fmt: skip
async def test_a_200_that_is_not_a_v1_answer_deletes_nothing(tmp_path, answer):
    """A 200 with {}, an HTML page or truncated JSON deletes nothing and is reported as an error."""
    db, ids = await _device(tmp_path, n=10)
    with (
        Receiver(tmp_path) as rx,
        FaultProxy(
            rx.url, lambda n, req: ("respond", 200, answer, {"Content-Type": "text/html"})
        ) as proxy,
    ):
        report = await drain(agent_settings(db, proxy.url, rx, attempts=2))
    assert not report.ok and "not a v1 batch answer" in report.errors[0]
    assert local_ids(db) == set(ids) and _records(db) == (10, 50)


async def test_401_changes_nothing_and_is_reported(tmp_path):
    """A refused signature changes no workflow or audit row; the error is recorded for `status`."""
    db, ids = await _device(tmp_path, n=10)
    with Receiver(tmp_path) as rx:
        settings = agent_settings(db, rx.url, rx).model_copy(
            update={"secret": protocol_secret("wrong")}
        )
        report = await drain(settings)
        assert report.auth_refused and rx.rows("workflows") == []
    assert local_ids(db) == set(ids) and _records(db) == (10, 50)
    async with SQLitePersistenceProvider(db) as p:
        assert "401" in await p.get_edge_sync_state("last_error")
        assert (await p.sync_backlog())["quarantined"] == 0


def protocol_secret(value: str):
    from pydantic import SecretStr

    return SecretStr(value)

"""Field faults driven through the real `ruvon-sync` CLI (issue 8): a proxy answering 413, unreadable
stored records, a response that trickles. Real receiver, real SQLite files, servers on 127.0.0.1."""

from __future__ import annotations

import json
import secrets
import sqlite3

from sync.harness import FaultProxy, Receiver, cli_flags, local_ids, make_finished, sync_cli

from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider


def events(stderr: str) -> list[dict]:
    """Every stderr line as JSON (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in stderr.splitlines()]


def status(db) -> dict:
    out = sync_cli("status", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


async def test_a_proxy_413_keeps_records_pending_until_a_lowered_limit_quarantines_and_a_raised_one_releases(
    tmp_path,
):
    """413 from a proxy below batch_bytes: small records arrive (batches halved), the big one stays pending and
    `once` exits 1 with cycle_failed 413; a lowered batch_bytes quarantines it with that limit; raising the
    limit again releases and delivers it -- nothing lost, nothing twice."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        small = await make_finished(p, 20, 1, state={"note": secrets.token_urlsafe(1500)})
        (big,) = await make_finished(p, 1, 1, state={"blob": secrets.token_urlsafe(45_000)})
    proxy_limit = {"bytes": 20_000}

    def nginx(n, req):  # client_max_body_size in front of the receiver
        if len(req.body) > proxy_limit["bytes"]:
            return (
                "respond",
                413,
                b"<html>413 Request Entity Too Large</html>",
                {"Content-Type": "text/html"},
            )
        return "forward"

    with Receiver(tmp_path) as rx, FaultProxy(rx.url, nginx) as proxy:
        out = sync_cli("once", *cli_flags(db, proxy.url, rx), "--json")
        assert out.returncode == 1, out.stderr
        failed = [e for e in events(out.stderr) if e["event"] == "cycle_failed"]
        assert len(failed) == 1 and failed[0]["level"] == "warning"
        assert failed[0]["http_status"] == 413 and failed[0]["reason"] == "too_large"
        assert big in failed[0]["error"] and "batch_bytes=1048576" in failed[0]["error"]
        assert local_ids(db) == {big} and sorted(r[0] for r in rx.rows("workflows")) == sorted(
            small
        )
        assert status(db)["quarantined"] == 0 and status(db)["backlog"] == 1

        out = sync_cli("once", *cli_flags(db, proxy.url, rx, batch_bytes=40_000))
        assert out.returncode == 0, out.stderr
        assert status(db)["quarantined"] == 1 and local_ids(db) == {big}

        proxy_limit["bytes"] = 1 << 20  # the proxy is fixed; the default limit is back
        out = sync_cli("once", *cli_flags(db, proxy.url, rx), "--json")
        assert out.returncode == 0, out.stderr
        released = [e for e in events(out.stderr) if e["event"] == "quarantine_released"]
        assert released and released[0]["ids"] == [big]
        assert local_ids(db) == set() and status(db)["quarantined"] == 0
        stored = rx.rows("workflows")
        assert sorted(r[0] for r in stored) == sorted([*small, big]) and len(stored) == 21


async def test_records_that_cannot_be_read_or_encoded_are_quarantined_and_the_rest_delivered(
    tmp_path,
):
    """Stored rows written raw with sqlite3 -- a lone surrogate, JSON cut short, bytes that are not UTF-8, NaN,
    an audit row gone bad -- are each quarantined with its reason, everything else arrives, no traceback, and
    `status` shows the last error and the count."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        ids = await make_finished(p, 30, 2)
    surrogate, cut, not_utf8, nan, bad_trail = ids[3], ids[9], ids[14], ids[20], ids[25]
    with sqlite3.connect(db) as conn:
        for wid, value in (
            (surrogate, '{"note": "\\ud800"}'),
            (cut, '{"amount": 4'),
            (nan, '{"x": NaN}'),
        ):
            conn.execute("UPDATE workflows SET state = ? WHERE id = ?", (value, wid))
        conn.execute(
            "UPDATE workflows SET state = CAST(? AS TEXT) WHERE id = ?",
            (b'{"n": "\xff\xfe"}', not_utf8),
        )
        (bad_audit,) = conn.execute(
            "SELECT audit_id FROM audit_log WHERE workflow_id = ? ORDER BY seq LIMIT 1",
            (bad_trail,),
        ).fetchone()
        conn.execute("UPDATE audit_log SET details = 'bit rot' WHERE audit_id = ?", (bad_audit,))
    with Receiver(tmp_path) as rx:
        out = sync_cli("once", *cli_flags(db, rx.url, rx), "--json")
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        set_aside = {
            e["id"]: e["reason"] for e in events(out.stderr) if e["event"] == "record_quarantined"
        }
        assert set(set_aside) == {surrogate, cut, not_utf8, nan, bad_audit}
        assert "surrogates not allowed" in set_aside[surrogate]
        assert "not UTF-8" in set_aside[not_utf8] and "NaN" in set_aside[nan]
        assert "not valid" in set_aside[cut] and "not valid" in set_aside[bad_audit]
        good = set(ids) - {surrogate, cut, not_utf8, nan, bad_trail}
        assert {r[0] for r in rx.rows("workflows")} == good | {bad_trail}  # its good rows went
        assert local_ids(db) == {surrogate, cut, not_utf8, nan, bad_trail}
    shown = status(db)
    assert shown["quarantined"] == 5 and shown["backlog"] == 0
    assert shown["last_error"].startswith("quarantined ")
    human = sync_cli("status", "--db", str(db)).stdout
    assert "quarantined:        5" in human and "last error:         quarantined" in human


async def test_an_answer_trickling_one_byte_at_a_time_cannot_keep_once_running(tmp_path):
    """Every request has an overall deadline: a 200 whose body trickles in forever ends `once` with exit 1,
    a cycle_failed line (reason timeout, both attempts) and every record still on the device."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        ids = await make_finished(p, 5, 1)
    with Receiver(tmp_path) as rx, FaultProxy(rx.url, lambda n, req: ("trickle", 0.2)) as proxy:
        out = sync_cli("once", *cli_flags(db, proxy.url, rx, timeout=1, attempts=2), timeout=120)
    assert out.returncode == 1, out.stderr
    [failed] = [e for e in events(out.stderr) if e["event"] == "cycle_failed"]
    assert failed["reason"] == "timeout" and failed["attempts"] == 2
    assert "no complete answer" in failed["error"] and "within 1s" in failed["error"]
    [retry] = [e for e in events(out.stderr) if e["event"] == "batch_retry"]
    assert retry["attempt"] == 1 and retry["retry_in_s"] >= 0
    assert local_ids(db) == set(ids) and rx.rows("workflows") == []

"""`ruvon-sync once | status` as a user runs them: summaries, JSON, Prometheus textfile, exit codes, no secret in output."""

from __future__ import annotations

import json

from sync.harness import Receiver, cli_flags, make_finished, sync_cli

from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider


async def test_once_json_logs_per_batch_and_never_prints_the_secret(tmp_path):
    """`once --json` exits 0 with counts; stderr has one JSON event per batch with counts and duration; the secret appears nowhere."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        await make_finished(p, 30, 2)
    with Receiver(tmp_path) as rx:
        out = sync_cli("once", *cli_flags(db, rx.url, rx, batch_records=30), "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["ok"] and summary["deleted"] == 30 and summary["audit_logs_acked"] == 60
    events = [json.loads(line) for line in out.stderr.splitlines()]
    batches = [e for e in events if e["event"] == "batch_synced"]
    assert len(batches) == summary["batches"] >= 3
    assert all(
        {"records", "workflows", "audit_logs", "deleted", "duration_ms", "bytes"} <= set(e)
        for e in batches
    )
    assert rx.secret not in out.stdout + out.stderr


async def test_status_reports_backlog_last_success_and_writes_prometheus_text(tmp_path):
    """`status --json` and the metrics file show backlog, oldest pending age, last success/error and quarantine."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        await make_finished(p, 4, 1)
    metrics = tmp_path / "ruvon_sync.prom"
    before = json.loads(sync_cli("status", "--db", str(db), "--json").stdout)
    assert (
        before["backlog"] == 4
        and before["oldest_pending_age_s"] >= 0
        and before["last_success_at"] is None
    )
    with Receiver(tmp_path) as rx:
        assert (
            sync_cli("once", *cli_flags(db, rx.url, rx), "--metrics-file", str(metrics)).returncode
            == 0
        )
    after = json.loads(sync_cli("status", "--db", str(db), "--json").stdout)
    assert after["backlog"] == 0 and after["last_success_at"] and after["last_error"] is None
    assert after["synced_workflows_total"] == 4 and after["quarantined"] == 0
    text = metrics.read_text()
    assert (
        "ruvon_sync_backlog_workflows 0" in text and "ruvon_sync_workflows_synced_total 4" in text
    )
    assert "# TYPE ruvon_sync_last_success_timestamp_seconds gauge" in text
    human = sync_cli("status", "--db", str(db)).stdout
    assert "backlog:" in human and "last success:" in human


async def test_auth_refused_is_exit_1_and_shown_by_status(tmp_path):
    """A wrong secret: `once` exits 1 with one line, deletes nothing, and `status` shows the error."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        await make_finished(p, 3, 1)
    with Receiver(tmp_path) as rx:
        flags = cli_flags(db, rx.url, rx)
        flags[flags.index("--secret") + 1] = "f" * 64
        out = sync_cli("once", *flags)
    assert (
        out.returncode == 1
        and "refused our credentials (401" in out.stderr
        and "Traceback" not in out.stderr
    )
    status = json.loads(sync_cli("status", "--db", str(db), "--json").stdout)
    assert status["backlog"] == 3 and "401" in status["last_error"]


def test_bad_usage_is_exit_2_with_one_line(tmp_path):
    """Missing required settings or a missing database is exit 2 with one line and no traceback."""
    out = sync_cli("once", "--db", str(tmp_path / "x.db"), env={"CREDENTIALS_DIRECTORY": ""})
    assert (
        out.returncode == 2
        and "missing required setting(s): --url" in out.stderr
        and "Traceback" not in out.stderr
    )
    out = sync_cli("status", "--db", str(tmp_path / "absent.db"))
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = sync_cli(
        "once",
        "--db",
        "x",
        "--url",
        "http://example.com",
        "--device-id",
        "d",
        "--key-id",
        "k",
        "--secret",
        "s",
    )
    assert out.returncode == 2 and "use https" in out.stderr

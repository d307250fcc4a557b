"""`ruvon-sync` as an operator meets it (issue 10): log lines that say why, an exact metrics file, quarantine
that can be acted on, read-only inspection, and one error style. Real CLI, real files, servers on 127.0.0.1."""

from __future__ import annotations

import email.utils
import json
import sqlite3
import stat
import time
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families
from sync.harness import FaultProxy, Receiver, cli_flags, local_ids, make_finished, sync_cli

from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider


def events(stderr: str) -> list[dict]:
    """Every stderr line as JSON (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in stderr.splitlines()]


def samples(text: str) -> dict[str, str]:
    """The metrics file's samples: ``name{labels}`` -> value exactly as written."""
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.rsplit(" ", 1) for line in lines)


def status(db) -> dict:
    out = sync_cli("status", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


async def _device(tmp_path, n=6, audit_per=1):
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        ids = await make_finished(p, n, audit_per)
    return db, ids


async def test_retries_failed_cycles_and_idle_cycles_are_logged_as_json_with_their_reasons(
    tmp_path,
):
    """503s give one batch_retry line each (with retry_in_s), then cycle_failed at warning with error, http_status
    and attempts; after recovery an idle cycle is silent at info and a debug line at debug; stderr is all JSON."""
    db, ids = await _device(tmp_path)
    busy = {"on": True}

    def script(n, req):
        return (
            ("respond", 503, b'{"error": "store unavailable"}', {"Retry-After": "0"})
            if busy["on"]
            else "forward"
        )

    with Receiver(tmp_path) as rx, FaultProxy(rx.url, script) as proxy:
        out = sync_cli("once", *cli_flags(db, proxy.url, rx, attempts=3))
        assert out.returncode == 1
        lines = events(out.stderr)
        retries = [e for e in lines if e["event"] == "batch_retry"]
        assert [e["attempt"] for e in retries] == [1, 2] and all(
            e["retry_in_s"] == 0 for e in retries
        )
        assert all(e["http_status"] == 503 and "store unavailable" in e["error"] for e in retries)
        [failed] = [e for e in lines if e["event"] == "cycle_failed"]
        assert (
            failed["level"] == "warning"
            and failed["http_status"] == 503
            and failed["attempts"] == 3
        )
        assert failed["reason"] == "throttled" and "503: store unavailable" in failed["error"]
        assert not any(line.startswith("ruvon-sync:") for line in out.stderr.splitlines())

        busy["on"] = False
        assert sync_cli("once", *cli_flags(db, proxy.url, rx)).returncode == 0
        assert local_ids(db) == set()
        idle = sync_cli("once", *cli_flags(db, proxy.url, rx))
        assert idle.returncode == 0
        assert [e["event"] for e in events(idle.stderr)] == ["secret_on_command_line"]
        idle = sync_cli("once", *cli_flags(db, proxy.url, rx), "--log-level", "debug")
        finished = [e for e in events(idle.stderr) if e["event"] == "cycle_finished"]
        assert (
            len(finished) == 1 and finished[0]["level"] == "debug" and finished[0]["batches"] == 0
        )


async def test_a_device_clock_outside_the_window_is_named_with_its_measured_offset(tmp_path):
    """A timestamp-window 401 whose Date is an hour ahead of the device: the error says the device clock is
    about 3600 s behind, `status` and the metrics file carry the measured offset, nothing is deleted."""
    db, ids = await _device(tmp_path)
    metrics = tmp_path / "sync.prom"
    body = b'{"error": "timestamp outside the allowed window"}'

    def ahead(
        n, req
    ):  # the receiver's clock, an hour ahead of the device's, at the moment it answers
        return (
            "respond",
            401,
            body,
            {"Date": email.utils.formatdate(time.time() + 3600, usegmt=True)},
        )

    with (
        Receiver(tmp_path) as rx,
        FaultProxy(rx.url, ahead) as proxy,
    ):
        out = sync_cli("once", *cli_flags(db, proxy.url, rx, metrics_file=metrics))
    assert out.returncode == 1 and local_ids(db) == set(ids)
    [failed] = [e for e in events(out.stderr) if e["event"] == "cycle_failed"]
    assert failed["http_status"] == 401 and failed["reason"] == "auth"
    assert "s behind; check time sync" in failed["error"] and "device clock is 3" in failed["error"]
    offset = status(db)["clock_offset_s"]
    assert -3660 <= offset <= -3540  # 1 s resolution; the bound only allows for a slow machine
    assert float(samples(metrics.read_text())["ruvon_sync_clock_offset_seconds"]) == offset


async def test_metrics_file_has_exact_values_new_counters_and_mode_0644_under_umask_077(tmp_path):
    """Counters above 10^6 and the success timestamp are written exactly (no %g); failures by reason, retries,
    and the file is 0644 although the agent runs with umask 077."""
    db, ids = await _device(tmp_path, n=3)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO edge_sync_state (key, value) VALUES ('synced_workflows_total', '1234567')"
        )
    metrics = tmp_path / "sync.prom"
    fail_once = {"n": 0}

    def script(n, req):
        fail_once["n"] += 1
        return ("respond", 500, b"oops", {}) if fail_once["n"] <= 2 else "forward"

    with Receiver(tmp_path) as rx, FaultProxy(rx.url, script) as proxy:
        flags = cli_flags(db, proxy.url, rx, metrics_file=metrics, attempts=2)
        assert sync_cli("once", *flags, umask=0o077).returncode == 1
        assert sync_cli("once", *flags, umask=0o077).returncode == 0
    assert stat.S_IMODE(metrics.stat().st_mode) == 0o644
    values = samples(metrics.read_text())
    shown = status(db)
    success = datetime.fromisoformat(shown["last_success_at"].replace("Z", "+00:00")).timestamp()
    assert values["ruvon_sync_workflows_synced_total"] == "1234570"
    assert values["ruvon_sync_last_success_timestamp_seconds"] == repr(success)
    assert values['ruvon_sync_cycle_failures_total{reason="server_error"}'] == "1"
    assert (
        values["ruvon_sync_retries_total"] == "1" and values["ruvon_sync_backlog_workflows"] == "0"
    )
    assert (
        values["ruvon_sync_up_to_date"] == "1" and values["ruvon_sync_quarantined_records"] == "0"
    )
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]
    parsed = {
        sample.name: sample.value
        for family in text_string_to_metric_families(metrics.read_text())
        for sample in family.samples
    }  # what node_exporter reads
    assert parsed["ruvon_sync_workflows_synced_total"] == 1234570
    assert parsed["ruvon_sync_last_success_timestamp_seconds"] == success


async def test_quarantine_list_requeue_and_purge_round_trip(tmp_path):
    """Rejected records show in `quarantine list` (JSON and text); requeue sends one again; purge needs --yes,
    logs each record it deletes at warning, and only then is the data gone."""
    db = tmp_path / "edge.db"
    async with SQLitePersistenceProvider(db) as p:
        good = await make_finished(p, 3, 1)
        bad = await make_finished(
            p, 2, 1, workflow_type="x" * 300
        )  # the receiver rejects these by name
    with Receiver(tmp_path) as rx:
        assert sync_cli("once", *cli_flags(db, rx.url, rx)).returncode == 0
        listed = json.loads(sync_cli("quarantine", "list", "--db", str(db), "--json").stdout)
        assert sorted(q["id"] for q in listed) == sorted(bad)
        assert all(
            set(q) == {"kind", "id", "reason", "quarantined_at"} and q["kind"] == "workflow"
            for q in listed
        )
        text = sync_cli("quarantine", "list", "--db", str(db)).stdout
        assert bad[0] in text and listed[0]["reason"] in text

        out = sync_cli("quarantine", "requeue", bad[0], "--db", str(db))
        assert out.returncode == 0 and "1 record(s)" in out.stdout
        assert status(db)["quarantined"] == 1 and status(db)["backlog"] == 1
        assert sync_cli("once", *cli_flags(db, rx.url, rx)).returncode == 0  # rejected again
        assert status(db)["quarantined"] == 2

        refused = sync_cli("quarantine", "purge", "--all", "--db", str(db))
        assert (
            refused.returncode == 2 and "add --yes" in refused.stderr and local_ids(db) == set(bad)
        )
        unknown = sync_cli("quarantine", "requeue", "nope", "--db", str(db))
        assert unknown.returncode == 2 and "no quarantined record has id nope" in unknown.stderr
        out = sync_cli("quarantine", "purge", "--all", "--yes", "--db", str(db), "--json")
        assert out.returncode == 0 and sorted(q["id"] for q in json.loads(out.stdout)) == sorted(
            bad
        )
        purged = [e for e in events(out.stderr) if e["event"] == "quarantine_purged"]
        assert sorted(e["id"] for e in purged) == sorted(bad) and {e["level"] for e in purged} == {
            "warning"
        }
        assert local_ids(db) == set() and status(db)["quarantined"] == 0
        assert sorted(r[0] for r in rx.rows("workflows")) == sorted(good)


async def test_status_and_quarantine_list_read_while_another_process_holds_the_write_lock(tmp_path):
    """With a writer holding the lock, `status` and `quarantine list` answer at once from a read-only open."""
    db, ids = await _device(tmp_path, n=4)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO edge_sync_state (key, value) VALUES ('held', 'uncommitted')")
    try:
        out = sync_cli("status", "--db", str(db), "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["backlog"] == 4
        out = sync_cli("quarantine", "list", "--db", str(db), "--json")
        assert out.returncode == 0 and json.loads(out.stdout) == []
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_help_version_secret_warning_and_one_error_style(tmp_path):
    """Each verb's --help lists only its own flags; --version; --secret warns about ps; bad usage is one line, exit 2."""
    status_help = sync_cli("status", "--help").stdout
    assert (
        "--metrics-file" in status_help
        and "--url" not in status_help
        and "--batch-bytes" not in status_help
    )
    list_help = sync_cli("quarantine", "list", "--help").stdout
    assert "--db" in list_help and "--url" not in list_help and "--metrics-file" not in list_help
    assert "--yes" in sync_cli("quarantine", "purge", "--help").stdout
    assert "--batch-bytes" in sync_cli("once", "--help").stdout
    version = sync_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("ruvon-sync ")
    for bad in (["once", "--no-such-flag"], ["status", "--url", "x"], ["quarantine"], ["nope"]):
        out = sync_cli(*bad)
        assert out.returncode == 2 and "usage:" not in out.stderr, bad
        assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("ruvon-sync: error: "), (
            bad
        )

    db, _ = await _device(tmp_path, n=1)
    with Receiver(tmp_path) as rx:
        out = sync_cli("once", *cli_flags(db, rx.url, rx))
        [warning] = [e for e in events(out.stderr) if e["event"] == "secret_on_command_line"]
        assert (
            warning["level"] == "warning"
            and "ps" in warning["message"]
            and rx.secret not in out.stderr
        )
        secret_file = tmp_path / "secret"
        secret_file.write_text(rx.secret)
        flags = cli_flags(db, rx.url, rx)
        at = flags.index("--secret")
        flags[at : at + 2] = ["--secret-file", str(secret_file)]
        out = sync_cli("once", *flags)
        assert out.returncode == 0 and "secret_on_command_line" not in out.stderr

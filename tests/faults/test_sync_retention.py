"""What the device keeps after the real agent synced to the real receiver: idempotency keys and failures."""

from __future__ import annotations

import json
import sqlite3

from device import CODE, YAML, edge
from sync.harness import Receiver, cli_flags, sync_cli


def run_payment(db, *extra: str, env: dict | None = None, as_json: bool = True):
    flags = ["--json"] if as_json else []
    return edge(
        "run", str(YAML), *CODE, "--db", str(db), *flags, "--data", '{"amount": 7}', *extra, env=env
    )


def marks(path) -> list[str]:
    return path.read_text().split("\n")[:-1] if path.exists() else []


def on_device(db) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        return {i: (s, v) for i, s, v in conn.execute("SELECT id, status, version FROM workflows")}


def sync_once(db, rx: Receiver) -> None:
    done = sync_cli("once", *cli_flags(db, rx.url, rx))
    assert done.returncode == 0, done.stderr


def test_a_key_used_by_a_synced_workflow_runs_nothing(tmp_path):
    """Start with key A1, sync (delivered, deleted), start A1 again: no step runs, no row, the answer names the first run."""
    db, markers = tmp_path / "edge.db", tmp_path / "marks"
    env = {"PAYMENT_MARKERS": str(markers)}
    first = run_payment(db, "--idempotency-key", "A1", env=env)
    assert first.returncode == 0, first.stderr
    wid = json.loads(first.stdout)["id"]
    assert marks(markers) == [f"{wid} authorize", f"{wid} capture"]
    with Receiver(tmp_path) as rx:
        sync_once(db, rx)
        assert on_device(db) == {}
        again = run_payment(db, "--idempotency-key", "A1", env=env)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout) == {
            "id": wid, "workflow_type": "Payment", "status": "COMPLETED", "idempotency_key": "A1",
            "synced_at": json.loads(again.stdout)["synced_at"], "on_device": False,
        }  # fmt: skip
        text = run_payment(db, "--idempotency-key", "A1", env=env, as_json=False)
        assert (
            text.returncode == 0
            and f"was used by workflow {wid} (Payment), which ended COMPLETED" in text.stdout
        )
        assert marks(markers) == [f"{wid} authorize", f"{wid} capture"]  # nothing ran again
        assert on_device(db) == {}
        sync_once(db, rx)
        assert [r[0] for r in rx.rows("workflows")] == [wid]


def test_a_failed_workflow_is_synced_kept_retried_and_synced_again(tmp_path):
    """A FAILED payment reaches the cloud yet stays on the device; retried, its COMPLETED version syncs and it goes."""
    db = tmp_path / "edge.db"
    failed = run_payment(db, env={"PAYMENT_DECLINE": "1"})
    assert failed.returncode == 1
    doc = json.loads(failed.stdout)
    wid, version = doc["id"], doc["version"]
    assert doc["status"] == "FAILED"
    with Receiver(tmp_path) as rx:
        sync_once(db, rx)
        assert rx.rows("workflows") == [(wid, version)]  # the cloud sees the failure
        assert on_device(db) == {wid: ("FAILED", version)}  # and the device keeps it
        sync_once(db, rx)
        assert rx.rows("workflows") == [(wid, version)]  # not sent twice
        shown = edge("show", wid, "--db", str(db), "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["error"], shown.stderr
        retried = edge("retry", wid, *CODE, "--db", str(db), "--json")
        assert retried.returncode == 0, retried.stderr
        new_version = json.loads(retried.stdout)["version"]
        assert json.loads(retried.stdout)["status"] == "COMPLETED" and new_version > version
        sync_once(db, rx)
        assert sorted(rx.rows("workflows")) == sorted([(wid, version), (wid, new_version)])
        assert on_device(db) == {}


def test_a_cancelled_failure_is_synced_again_and_deleted(tmp_path):
    """An operator gives up on a kept failure (cancel): the CANCELLED version syncs and the device forgets it."""
    db = tmp_path / "edge.db"
    failed = run_payment(db, env={"PAYMENT_DECLINE": "1"})
    wid, version = json.loads(failed.stdout)["id"], json.loads(failed.stdout)["version"]
    with Receiver(tmp_path) as rx:
        sync_once(db, rx)
        cancelled = edge("cancel", wid, *CODE, "--db", str(db), "--json")
        assert cancelled.returncode == 0, cancelled.stderr
        assert json.loads(cancelled.stdout)["status"] == "CANCELLED"
        sync_once(db, rx)
        assert len(rx.rows("workflows")) == 2 and (wid, version) in rx.rows("workflows")
        assert on_device(db) == {}

"""A real full disk (a 3 MiB tmpfs): new work is refused in one line, sync still delivers and deletes, work resumes."""

from __future__ import annotations

import errno
import hashlib
import json
import sqlite3

import pytest
from device import CODE, YAML, edge, one_line, payments_engine, tmpfs
from sync.harness import Receiver, cli_flags, sync_cli

from ruvon_edge.providers.persistence import DiskFullError

RESERVE = 512 * 1024


def stored(db) -> dict[str, str]:
    """Workflow id -> status, read with plain sqlite3."""
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT id, status FROM workflows"))


async def fill_until_refused(db) -> tuple[list[str], DiskFullError]:
    """Start and run payments until the engine refuses a new one; return the ids it accepted."""
    accepted: list[str] = []
    async with payments_engine(db) as engine:
        for _ in range(20_000):  # a bound, far above what 3 MiB holds
            try:
                wf = await engine.start_workflow("Payment", {"amount": 5, "note": "x" * 1500})
            except DiskFullError as refused:
                return accepted, refused
            accepted.append(str(wf.id))
            try:
                await engine.run(wf.id)
            except DiskFullError:
                pass  # the step could not commit: the workflow stays at its last committed step
    raise AssertionError("3 MiB never filled up")


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("RUVON_DISK_RESERVE_BYTES", str(RESERVE))
    with tmpfs(tmp_path / "disk", "3m") as disk:
        yield disk


async def test_full_disk_sync_delivers_and_deletes_then_the_engine_accepts_work_again(
    full_disk, tmp_path
):
    """Filled to ENOSPC: run exits 1 with 'disk full'; ruvon-sync once delivers and deletes; run then succeeds; nothing lost."""
    db = full_disk / "edge.db"
    env = {"RUVON_DISK_RESERVE_BYTES": str(RESERVE)}
    accepted, refused = await fill_until_refused(db)
    assert str(refused).startswith("disk full:") and "\n" not in str(refused)
    assert not (full_disk / "edge.db.reserve").exists()
    before = stored(db)
    assert set(before) == set(accepted) and list(before.values()).count("COMPLETED") > 10

    line = one_line(
        edge("run", str(YAML), *CODE, "--db", str(db), "--data", '{"amount": 1}', env=env), 1
    )
    assert line.startswith("ruvon-edge: error: disk full:")
    assert stored(db) == before  # the refusal wrote nothing

    with Receiver(tmp_path) as rx:
        synced = sync_cli("once", *cli_flags(db, rx.url, rx), env=env)
        assert synced.returncode == 0, (synced.stdout, synced.stderr)
        received = rx.rows("workflows")
    completed = {i for i, s in before.items() if s == "COMPLETED"}
    assert sorted(i for i, _ in received) == sorted(completed)  # delivered, each once
    left = stored(db)
    assert set(left) == set(before) - completed  # and deleted on the device: nothing lost
    assert all(before[i] == s for i, s in left.items())

    again = edge(
        "run", str(YAML), *CODE, "--db", str(db), "--data", '{"amount": 2}', "--json", env=env
    )
    assert again.returncode == 0, again.stderr
    assert (full_disk / "edge.db.reserve").stat().st_size == RESERVE
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(stored(db)) == len(left) + 1


async def test_opening_a_current_database_on_a_full_disk_writes_nothing(full_disk, caplog):
    """On a full disk list and the read-write open succeed and change no byte; refusals are counted and logged once."""
    db = full_disk / "edge.db"
    accepted, _ = await fill_until_refused(db)
    caplog.clear()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    listed = edge("list", "--db", str(db), "--limit", "100000", "--json")
    assert listed.returncode == 0, listed.stderr
    async with payments_engine(db) as engine:
        assert len(await engine.list_workflows(limit=100_000)) == len(accepted)
        for _ in range(3):
            with pytest.raises(DiskFullError, match="^disk full:"):
                await engine.start_workflow("Payment", {"amount": 1, "note": "y" * 1500})
        assert engine.persistence.disk_full_refusals == 3
    refusing = [
        r for r in caplog.records if r.getMessage().startswith("disk full: refusing writes")
    ]
    assert (
        len(refusing) == 1 and refusing[0].levelname == "WARNING"
    )  # one line, not one per attempt
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def fill(path) -> None:
    """Write ``path`` until the filesystem answers ENOSPC."""
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


async def test_a_cleanly_closed_database_opens_on_a_disk_with_no_free_byte(full_disk):
    """No -wal/-shm left and 0 bytes free: list reads it; run opens it by spending the reserve and refuses in one line."""
    db = full_disk / "edge.db"
    async with payments_engine(db) as engine:
        done = await engine.run((await engine.start_workflow("Payment", {"amount": 4})).id)
    assert sorted(p.name for p in full_disk.iterdir()) == ["edge.db", "edge.db.reserve"]
    fill(full_disk / "filler")
    env = {"RUVON_DISK_RESERVE_BYTES": str(RESERVE)}
    listed = edge("list", "--db", str(db), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(d["id"], d["status"]) for d in json.loads(listed.stdout)] == [
        (str(done.id), "COMPLETED")
    ]
    refused = edge("run", str(YAML), *CODE, "--db", str(db), "--data", '{"amount": 5}', env=env)
    assert one_line(refused, 1).startswith("ruvon-edge: error: disk full: ")
    assert not (full_disk / "edge.db.reserve").exists()
    (full_disk / "filler").unlink()  # space is back
    again = edge(
        "run", str(YAML), *CODE, "--db", str(db), "--data", '{"amount": 5}', "--json", env=env
    )
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "COMPLETED", again.stderr
    assert (full_disk / "edge.db.reserve").exists() and len(stored(db)) == 2

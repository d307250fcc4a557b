"""A real full disk (a 3 MiB tmpfs): new work is refused in one line, sync still delivers and deletes, work resumes."""

from __future__ import annotations

import hashlib
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


async def test_opening_a_current_database_on_a_full_disk_writes_nothing(full_disk):
    """With the disk full, list (read-only) and the read-write open of a current database succeed and change no byte."""
    db = full_disk / "edge.db"
    accepted, _ = await fill_until_refused(db)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    listed = edge("list", "--db", str(db), "--limit", "100000", "--json")
    assert listed.returncode == 0, listed.stderr
    async with payments_engine(db) as engine:
        assert len(await engine.list_workflows(limit=100_000)) == len(accepted)
        with pytest.raises(DiskFullError, match="^disk full:"):
            await engine.start_workflow("Payment", {"amount": 1, "note": "y" * 1500})
        assert engine.persistence.disk_full_refusals == 1
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest

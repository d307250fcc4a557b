"""The read-only open: a plain SQLite reader that never writes, migrates, initialises or waits for a writer."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from ruvon_edge.implementations.persistence import _schema
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon_edge.providers.persistence import PersistenceError, Transition

_SCRIPT = Path(sys.executable).with_name("ruvon-edge")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ruvon_edge.cli"]

HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE workflows SET status = 'CANCELLED'")  # uncommitted: readers must not see it
print("held", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def edge(*args: str) -> subprocess.CompletedProcess:
    """Run ``ruvon-edge`` with no inherited RUVON_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUVON_")}
    return subprocess.run([*COMMAND, *args], env=env, capture_output=True, text=True, timeout=60)


@contextmanager
def read_only_mount(directory: Path):
    """Make ``directory`` read-only even for root (a read-only bind mount) when mounting is permitted."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield False
        return
    bound = subprocess.run(["mount", "--bind", str(directory), str(directory)], capture_output=True)
    if bound.returncode != 0:
        yield False
        return
    try:
        ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(directory)], capture_output=True)
        yield ro.returncode == 0
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def seed(path: Path, n: int = 3) -> list[str]:
    """A current database with ``n`` workflows, closed cleanly (no -wal left)."""
    ids = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(n)]
    async with SQLitePersistenceProvider(path) as store:
        await store.commit([Transition({"id": i, "workflow_type": "Order", "status": "COMPLETED",
                                        "state": {"n": k}, "current_step": "Ship"}, None,
                                       audit=[{"event_type": "WORKFLOW_STARTED"}])
                            for k, i in enumerate(ids)])  # fmt: skip
    return ids


def listed(result: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    assert result.returncode == 0, result.stderr
    return sorted((d["id"], d["status"]) for d in json.loads(result.stdout))


async def test_list_and_show_on_a_read_only_copy(tmp_path):
    """list and show read a 0444 copy in a 0555 directory (read-only mounted when root); the file is unchanged."""
    ids = await seed(tmp_path / "edge.db")
    ro_dir = tmp_path / "ro"
    ro_dir.mkdir()
    copy = ro_dir / "edge.db"
    shutil.copy(tmp_path / "edge.db", copy)
    before = digest(copy)
    copy.chmod(0o444)
    ro_dir.chmod(0o555)
    try:
        with read_only_mount(ro_dir) as mounted:
            if mounted:  # root ignores file modes: prove the kernel itself refuses writes here
                with pytest.raises(OSError):
                    (ro_dir / "probe").write_bytes(b"x")
            assert listed(edge("list", "--db", str(copy), "--json")) == [
                (i, "COMPLETED") for i in ids
            ]
            shown = edge("show", ids[1], "--db", str(copy), "--json", "--audit")
            assert shown.returncode == 0, shown.stderr
            doc = json.loads(shown.stdout)
            assert (doc["state"], [a["event_type"] for a in doc["audit"]]) == (
                {"n": 1},
                ["WORKFLOW_STARTED"],
            )
    finally:
        ro_dir.chmod(0o755)
    assert digest(copy) == before
    assert sorted(p.name for p in ro_dir.iterdir()) == ["edge.db"]


async def test_list_and_show_while_another_process_holds_the_write_lock(tmp_path):
    """With BEGIN IMMEDIATE held by another process, list/show answer from committed data (no lock wait, no error)."""
    db = tmp_path / "edge.db"
    ids = await seed(db)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert listed(edge("list", "--db", str(db), "--json")) == [(i, "COMPLETED") for i in ids]
        shown = edge("show", ids[0], "--db", str(db), "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "COMPLETED", (
            shown.stderr
        )
        assert holder.poll() is None  # the lock was held throughout
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.stdout.close()
        assert holder.wait(30) == 0


async def test_write_methods_refuse_and_nothing_is_written(tmp_path):
    """Every write on a read-only store raises 'opened read-only' and the file keeps its bytes."""
    db = tmp_path / "edge.db"
    ids = await seed(db)
    before = digest(db)
    async with SQLitePersistenceProvider(db, read_only=True) as store:
        assert (await store.load_workflow(ids[0]))["status"] == "COMPLETED"
        for call in (store.save_workflow(ids[0], {"workflow_type": "X", "status": "ACTIVE"}),
                     store.delete_synced_workflows(ids), store.set_edge_sync_state("k", "v"),
                     store.log_execution(ids[0], None, "INFO", "x")):  # fmt: skip
            with pytest.raises(PersistenceError, match="opened read-only"):
                await call
        assert store._writer is None
    assert digest(db) == before


@pytest.mark.parametrize("content", [None, b""], ids=["missing", "zero-byte"])
async def test_missing_or_empty_file_is_refused_and_never_initialised(tmp_path, content):
    """A read-only open refuses a missing or zero-byte file with one line and leaves it as it was."""
    db = tmp_path / "edge.db"
    if content is not None:
        db.write_bytes(content)
    with pytest.raises(PersistenceError, match="no such database|is empty \\(0 bytes\\)") as err:
        await SQLitePersistenceProvider(db, read_only=True).initialize()
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if content is None else ["edge.db"])
    assert content is None or db.read_bytes() == b""
    result = edge("list", "--db", str(db))
    assert result.returncode in (1, 2) and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert content is None or db.stat().st_size == 0


async def test_a_newer_schema_is_refused_with_one_line(tmp_path):
    """A database from a newer release is refused by list with one line, exit 1, file untouched."""
    db = tmp_path / "edge.db"
    await seed(db)
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {_schema.SCHEMA_VERSION + 1}")
    before = digest(db)
    result = edge("list", "--db", str(db))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ruvon-edge: error: {db} has schema version {_schema.SCHEMA_VERSION + 1}, newer than this "
        f"Ruvon Edge understands ({_schema.SCHEMA_VERSION}); upgrade ruvon-edge to open it"
    ]
    assert digest(db) == before


async def test_another_applications_file_is_refused_before_any_pragma(tmp_path):
    """A read-write open refuses a foreign SQLite file without switching it to WAL or writing to it."""
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    before = digest(db)
    with pytest.raises(PersistenceError, match=r"holds other tables \(customers\)"):
        await SQLitePersistenceProvider(db).initialize()
    assert digest(db) == before
    assert db.read_bytes()[18:20] == b"\x01\x01"  # file format 1: rollback journal, not WAL
    assert not (tmp_path / "other.db-wal").exists()

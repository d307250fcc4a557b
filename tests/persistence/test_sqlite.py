"""What only the SQLite store promises: pragmas, migrations, index use, one COMMIT per step, clear failures."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import threading
import time
import uuid

import pytest

from ruvon_edge.implementations.persistence import _schema
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon_edge.providers.persistence import (
    ConcurrentUpdateError,
    DiskFullError,
    PersistenceError,
    Transition,
    WorkflowNotFoundError,
)


def wf(status: str = "ACTIVE", **kw) -> dict:
    return {"id": str(uuid.uuid4()), "workflow_type": "Order", "status": status, "state": {"n": 1},
            "current_step": "Reserve", **kw}  # fmt: skip


def full_step(w: dict, version: int | None) -> Transition:
    return Transition(workflow=w, expected_version=version,
                      audit=[{"event_type": "STEP_EXECUTED", "step_name": "Reserve"}],
                      logs=[{"step_name": "Reserve", "level": "INFO", "message": "ok"}],
                      metrics=[{"step_name": "Reserve", "metric_name": "ms", "metric_value": 1.0}])  # fmt: skip


async def on_writer(store: SQLitePersistenceProvider, sql: str):
    """Run one statement on the provider's own writer connection (per-connection pragmas)."""
    return await store._writer.call(lambda conn: conn.execute(sql).fetchone()[0])


def integrity(path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.fixture
async def store(tmp_path):
    async with SQLitePersistenceProvider(tmp_path / "edge.db") as provider:
        yield provider


async def test_pragmas_wal_and_bounds(tmp_path):
    """The writer runs in WAL with the requested synchronous level, busy timeout and WAL bounds."""
    async with SQLitePersistenceProvider(tmp_path / "a.db", synchronous="FULL", busy_timeout_seconds=2.5,
                                         journal_size_limit=1 << 20, wal_autocheckpoint=500) as s:  # fmt: skip
        assert await on_writer(s, "PRAGMA journal_mode") == "wal"
        assert await on_writer(s, "PRAGMA synchronous") == 2  # FULL
        assert await on_writer(s, "PRAGMA busy_timeout") == 2500
        assert await on_writer(s, "PRAGMA journal_size_limit") == 1 << 20
        assert await on_writer(s, "PRAGMA wal_autocheckpoint") == 500
        assert await on_writer(s, "PRAGMA foreign_keys") == 0
    async with SQLitePersistenceProvider(tmp_path / "b.db") as s:
        assert await on_writer(s, "PRAGMA synchronous") == 1  # NORMAL
    with pytest.raises(ValueError, match="synchronous"):
        SQLitePersistenceProvider(tmp_path / "c.db", synchronous="OFF")


async def test_wal_stays_bounded(tmp_path):
    """With a small autocheckpoint and size limit, the WAL file stays small under many commits."""
    path = tmp_path / "wal.db"
    async with SQLitePersistenceProvider(
        path, wal_autocheckpoint=50, journal_size_limit=64 * 1024
    ) as s:
        for _ in range(150):
            await s.commit([full_step(wf(), None)])
        assert os.path.getsize(f"{path}-wal") < 100 * 4096


async def test_one_commit_per_step_and_group_commit(store):
    """One commit() with audit, log and metric rows is one SQLite COMMIT; 50 concurrent ones share COMMITs."""
    before = store.commit_count
    await store.commit([full_step(wf(), None)])
    assert store.commit_count - before == 1
    before = store.commit_count
    many = [wf() for _ in range(50)]
    assert await asyncio.gather(*(store.commit([full_step(w, None)]) for w in many)) == [[1]] * 50
    assert store.commit_count - before < 50
    assert all([(await store.load_workflow(w["id"]))["version"] == 1 for w in many])


async def test_group_commit_isolates_a_conflicting_call(store):
    """In a group of concurrent commits, a version conflict fails only its own call; the rest commit."""
    base = wf()
    await store.commit([full_step(base, None)])
    others = [wf() for _ in range(20)]
    calls = [store.commit([full_step(w, None)]) for w in others[:10]]
    calls.append(store.commit([full_step({**base, "state": {"lost": 1}}, 7)]))
    calls += [store.commit([full_step(w, None)]) for w in others[10:]]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[10], ConcurrentUpdateError)
    assert [r for i, r in enumerate(results) if i != 10] == [[1]] * 20
    assert (await store.load_workflow(base["id"]))["state"] == {"n": 1}
    assert len(await store.get_audit_logs(base["id"])) == 1


async def test_migrates_a_version_1_database(tmp_path):
    """A database at schema version 1 is migrated: rows kept, finished ones queued for sync in order."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path, isolation_level=None) as conn:
        for sql in _schema.MIGRATIONS[0]:
            conn.execute(sql)
        for wid, status, at in [
            ("w1", "COMPLETED", "2025-01-02"),
            ("w2", "ACTIVE", "2025-01-01"),
            ("w3", "FAILED", "2025-01-01"),
        ]:
            conn.execute("INSERT INTO workflows (id, workflow_type, status, version, created_at, updated_at) "
                         "VALUES (?, 'Order', ?, 1, ?, ?)", (wid, status, at, at))  # fmt: skip
        conn.execute("PRAGMA user_version = 1")
    async with SQLitePersistenceProvider(path) as s:
        assert await on_writer(s, "PRAGMA user_version") == _schema.SCHEMA_VERSION
        assert [r.id for r in await s.get_pending_sync_workflows(10)] == ["w3", "w1"]
        assert (await s.load_workflow("w2"))["status"] == "ACTIVE"
        new = wf()
        await s.commit([full_step(new, None)])
        await s.commit([full_step({**new, "status": "COMPLETED"}, 1)])
        assert (await s.load_workflow(new["id"]))["sync_seq"] == 3
    assert integrity(path) == "ok"


async def test_refuses_a_database_from_a_newer_version(tmp_path):
    """A schema version newer than this code knows is refused with a clear message."""
    path = tmp_path / "new.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {_schema.SCHEMA_VERSION + 1}")
    with pytest.raises(PersistenceError, match="newer than this Ruvon Edge understands"):
        await SQLitePersistenceProvider(path).initialize()


@pytest.mark.parametrize("content", [os.urandom(8192), b"order_id,amount\nA1,80\n" * 300])
async def test_refuses_a_file_that_is_not_a_database(tmp_path, content):
    """A corrupt or non-SQLite file is refused at initialize, naming the file."""
    path = tmp_path / "junk.db"
    path.write_bytes(content)
    with pytest.raises(
        PersistenceError, match=re.escape(f"{path} is not a valid Ruvon Edge database")
    ):
        await SQLitePersistenceProvider(path).initialize()
    assert path.read_bytes() == content


async def test_refuses_another_applications_database(tmp_path):
    """An SQLite file holding some other application's tables is refused and left alone."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(
        PersistenceError,
        match=r"not a valid Ruvon Edge database: it holds other tables \(customers\)",
    ):
        await SQLitePersistenceProvider(path).initialize()


async def test_lock_held_by_another_connection_fails_clearly(tmp_path):
    """A write waits busy_timeout for another connection's lock, then fails naming the file; nothing half-written."""
    path = tmp_path / "locked.db"
    async with SQLitePersistenceProvider(path, busy_timeout_seconds=0.4) as s:
        locked, release = threading.Event(), threading.Event()

        def hold_lock() -> None:
            with sqlite3.connect(path, isolation_level=None) as conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO edge_sync_state VALUES ('holder', 'x')")
                locked.set()
                release.wait(10)
                conn.execute("ROLLBACK")

        holder = threading.Thread(target=hold_lock)
        holder.start()
        locked.wait(5)
        w = wf()
        started = time.monotonic()
        with pytest.raises(PersistenceError) as info:
            await s.commit([full_step(w, None)])
        waited = time.monotonic() - started
        release.set()
        holder.join()
        assert (
            waited >= 0.35
            and str(path) in str(info.value)
            and "database is locked" in str(info.value)
        )
        with pytest.raises(WorkflowNotFoundError):
            await s.load_workflow(w["id"])
        assert await s.get_audit_logs(w["id"]) == []
        assert await s.commit([full_step(w, None)]) == [1]  # works once the lock is gone
    assert integrity(path) == "ok"


async def test_disk_full_fails_cleanly_and_spares_the_group(tmp_path):
    """SQLITE_FULL (here a page cap) fails only the call that overflowed, clearly, nothing half-written, file intact."""
    path = tmp_path / "full.db"
    async with SQLitePersistenceProvider(path):
        pass
    with sqlite3.connect(path) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    async with SQLitePersistenceProvider(path, max_page_count=pages + 40) as s:
        assert await on_writer(s, "PRAGMA max_page_count") == pages + 40
        big = wf(state={"blob": "x" * 400_000})
        small = [wf() for _ in range(5)]
        results = await asyncio.gather(
            store_commit(s, big), *(store_commit(s, w) for w in small), return_exceptions=True
        )
        assert isinstance(results[0], DiskFullError)
        assert str(results[0]).startswith(f"disk full: cannot write {path} ")
        assert results[1:] == [[1]] * 5
        with pytest.raises(WorkflowNotFoundError):
            await s.load_workflow(big["id"])
        assert await s.get_audit_logs(big["id"]) == [] and await s.get_metrics(big["id"]) == []
        assert await s.commit([full_step(wf(), None)]) == [1]
    assert integrity(path) == "ok"


def store_commit(s, w):
    return s.commit([full_step(w, None)])


async def test_every_hot_query_uses_an_index(tmp_path):
    """Every statement the store runs for a full workload is served by an index, never a bare table scan."""
    path = tmp_path / "plan.db"
    statements: set[str] = set()
    async with SQLitePersistenceProvider(path) as s:
        for thread in (s._writer, s._reader):
            await thread.call(lambda conn: conn.set_trace_callback(statements.add))
        parent, child = wf(), wf()
        await s.commit(
            [
                full_step(parent, None),
                full_step({**child, "parent_id": parent["id"], "idempotency_key": "k"}, None),
            ]
        )
        await s.commit(
            [
                Transition(
                    {**parent, "status": "COMPLETED"},
                    1,
                    tasks=[{"task_id": "t1", "workflow_id": parent["id"]}],
                )
            ]
        )
        await s.save_workflow(child["id"], {**child, "status": "WAITING_HUMAN"})
        await s.load_workflow(parent["id"])
        for kw in (
            {},
            {"status": "ACTIVE"},
            {"workflow_type": "Order"},
            {"status": "ACTIVE", "workflow_type": "Order"},
        ):
            await s.list_workflows(**kw)
        await s.heartbeat_update(child["id"], "w", "Reserve")
        await s.scan_stale_heartbeats(30)
        await s.claim_next_task("w")
        await s.finish_task("t1", "COMPLETED")
        await s.cancel_task("t1")
        await s.requeue_stale_tasks(30)
        for reader in (s.get_audit_logs, s.get_execution_logs, s.get_metrics):
            await reader(parent["id"])
        [rec] = await s.get_pending_sync_workflows(10, after_seq=0)
        audit = await s.get_audit_logs_for_workflows([rec.id, child["id"]], 5)
        await s.quarantine_sync_record("audit", audit[-1].audit_id, "bad")
        await s.ack_synced_audit_logs([a.audit_id for a in audit])
        await s.delete_synced_workflows([rec.id], versions={rec.id: rec.sync_version})
        await s.sync_backlog()
    plans = {}
    with sqlite3.connect(path) as conn:
        for sql in statements:
            if re.match(r"\s*(SELECT|UPDATE|DELETE|INSERT)", sql) and "sqlite_master" not in sql:
                plans[sql] = [r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
    assert len(plans) >= 25
    for sql, plan in plans.items():
        scans = [p for p in plan if p.startswith("SCAN ") and "USING" not in p
                 and "VIRTUAL TABLE" not in p  # json_each over the ids we pass in
                 and not p.startswith(("SCAN json_each", "SCAN (subquery"))]  # fmt: skip
        assert not scans, f"{sql}\n{plan}"
        if re.search(r"ORDER BY (created_at DESC|w.sync_seq|h.last_heartbeat)", sql):
            assert not any("TEMP B-TREE" in p for p in plan), f"{sql}\n{plan}"


async def test_in_memory_path_and_closed_store(tmp_path):
    """':memory:' works on one connection; a closed store refuses work with a clear error; close is idempotent."""
    s = SQLitePersistenceProvider(":memory:")
    await s.initialize()
    w = wf()
    await s.commit([full_step(w, None)])
    assert (await s.load_workflow(w["id"]))["version"] == 1
    await s.close()
    await s.close()
    with pytest.raises(PersistenceError, match="not open"):
        await s.load_workflow(w["id"])

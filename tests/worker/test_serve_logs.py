"""What `ruvon-edge serve` tells an operator: one JSON line per event that matters, and a fast restart."""

from __future__ import annotations

import asyncio
import signal
import sqlite3

from serve_helpers import (
    FIXTURES,
    log_events,
    pending_jobs,
    serve_process,
    statuses,
    stop,
    wait_until,
)

from ruvon_edge import WorkflowEngine, WorkflowRegistry
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

LOGGED = FIXTURES / "logged"


def _seed_schedule_cursor(db) -> None:
    """Pretend the Tick schedule last ran in 2000: serve's first tick starts the current slot at once."""

    async def seed() -> None:
        async with SQLitePersistenceProvider(str(db)) as store:
            await store.set_edge_sync_state("schedule:Tick", "schedule:Tick:2000-01-01T00:00Z")

    asyncio.run(seed())


def test_serve_logs_task_ends_failures_and_schedule_slots_as_json(tmp_path):
    """Each ASYNC task end (outcome, duration), the FAILED workflow (type, id, step, error) and the slot fired."""
    db = tmp_path / "edge.db"
    (job,) = pending_jobs(db, [{"value": 3}], LOGGED / "jobs.yaml")
    (flaky,) = pending_jobs(db, [{}], LOGGED / "flaky.yaml", "Flaky")
    _seed_schedule_cursor(db)
    proc = serve_process(db, LOGGED)
    try:
        assert wait_until(
            lambda: (
                statuses(db)[job][0] == "COMPLETED"
                and statuses(db)[flaky][0] == "FAILED"
                and "COMPLETED"
                in {s for w, (s, _) in statuses(db).items() if w not in (job, flaky)}
            ),
            timeout=60,
        ), db.with_suffix(".err").read_text()
    finally:
        assert stop(proc) == 0, db.with_suffix(".err").read_text()
    events = log_events(db)
    ended = {e["workflow_id"]: e for e in events if e["event"] == "task_finished"}
    assert ended[job]["outcome"] == "COMPLETED" and ended[job]["level"] == "info"
    assert ended[flaky]["outcome"] == "FAILED" and ended[flaky]["level"] == "warning"
    assert "payment terminal offline" in ended[flaky]["error"]
    assert all(
        isinstance(e["duration_ms"], float) and e["duration_ms"] >= 0 for e in ended.values()
    )
    [failed] = [e for e in events if e["event"] == "workflow_failed"]
    assert (failed["level"], failed["workflow_type"], failed["workflow_id"], failed["step"]) == (
        "warning",
        "Flaky",
        flaky,
        "Charge",
    )
    assert "payment terminal offline" in failed["error"] and failed["status"] == "FAILED"
    [fired] = [e for e in events if e["event"] == "schedule_fired"]
    tick = next(w for w in statuses(db) if w not in (job, flaky))
    assert (fired["workflow_type"], fired["workflow_id"]) == ("Tick", tick)


def test_serve_warns_when_it_has_no_definitions(tmp_path):
    """Without --definitions serve still starts, and says at warning level that it has nothing to run."""
    db = tmp_path / "edge.db"
    proc = serve_process(db, None)
    try:
        assert wait_until(lambda: db.with_suffix(".out").exists() and any(
            e["event"] == "serve_ready" for e in log_events(db)), timeout=30)  # fmt: skip
    finally:
        assert stop(proc) == 0
    [warning] = [e for e in log_events(db) if e["event"] == "no_definitions"]
    assert warning["level"] == "warning" and "--definitions" in warning["hint"]


def _start_sleepy(db, marker) -> str:
    async def start() -> str:
        registry = WorkflowRegistry(allowed_modules=["worker_app"])
        registry.register_file(FIXTURES / "sleepy.yaml")
        async with WorkflowEngine(SQLitePersistenceProvider(str(db)), registry) as engine:
            wf = await engine.start_workflow("Sleepy", {"sleep": 600, "marker": str(marker)})
            return str(wf.id)

    return asyncio.run(start())


def _heartbeating(db, wid: str) -> bool:
    with sqlite3.connect(db) as conn:
        return (
            conn.execute("SELECT 1 FROM heartbeats WHERE workflow_id = ?", (wid,)).fetchone()
            is not None
        )


def test_restarted_serve_takes_back_its_predecessors_work_at_once(tmp_path):
    """After kill -9, a new serve (zombie threshold one hour) requeues the task and recovers the zombie at start."""
    db, marker = tmp_path / "edge.db", tmp_path / "marker"
    (task_wf,) = pending_jobs(db, [{"value": 5, "sleep": 600, "marker": str(marker)}],
                              FIXTURES / "restartable.yaml", "Restartable")  # fmt: skip
    sleepy = _start_sleepy(db, marker)
    env = {"RUVON_ZOMBIE_THRESHOLD": "3600"}
    definitions = tmp_path / "defs"
    definitions.mkdir()
    for name in ("restartable.yaml", "sleepy.yaml"):
        (definitions / name).write_text((FIXTURES / name).read_text())
    first = serve_process(db, definitions, env)
    try:
        assert wait_until(lambda: marker.exists() and marker.read_text().count("start") == 2
                          and _heartbeating(db, sleepy), timeout=60)  # fmt: skip
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    second = serve_process(db, definitions, env)
    try:
        assert wait_until(
            lambda: (
                statuses(db)[task_wf][0] == "COMPLETED"
                and statuses(db)[sleepy][0] == "FAILED_WORKER_CRASH"
            ),
            timeout=60,
        ), db.with_suffix(".err").read_text()
    finally:
        assert stop(second) == 0
    assert statuses(db)[task_wf][1]["attempt_seen"] == 2
    events = log_events(db)
    ready = [e["worker_id"] for e in events if e["event"] == "serve_ready"]
    assert len(ready) == 2 and ready[0] == ready[1]
    [requeued] = [e for e in events if e["event"] == "task_requeued"]
    assert requeued["workflow_id"] == task_wf and requeued["predecessor"] is True
    [zombie] = [e for e in events if e["event"] == "zombie_recovered"]
    assert (zombie["workflow_id"], zombie["action"]) == (sleepy, "crashed")
    assert zombie["previous_worker"] == ready[0]
    [failed] = [e for e in events if e["event"] == "workflow_failed"]
    assert (failed["workflow_id"], failed["status"], failed["step"]) == (
        sleepy,
        "FAILED_WORKER_CRASH",
        "Slow",
    )

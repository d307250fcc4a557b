"""`ruvon-edge serve` as a real subprocess: sd_notify over a real socket, ASYNC tasks, SIGTERM with grace."""

from __future__ import annotations

import asyncio
import json
import signal

from serve_helpers import JOBS, NotifySocket, pending_jobs, serve_process, statuses, wait_until

from ruvon_edge import WorkflowEngine, WorkflowRegistry
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider


def test_serve_notifies_runs_tasks_and_stops_cleanly_on_sigterm(tmp_path, notify_socket):
    """READY=1 then WATCHDOG=1 pings arrive, queued ASYNC tasks complete, SIGTERM gives STOPPING=1 and exit 0."""
    db = tmp_path / "edge.db"
    ids = pending_jobs(db, [{"value": v} for v in range(5)])
    proc = serve_process(
        db, JOBS, {"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "400000"}
    )
    try:
        notify_socket.wait_for("READY=1")
        notify_socket.wait_for("WATCHDOG=1")
        notify_socket.wait_for("WATCHDOG=1")
        assert wait_until(
            lambda: all(s == "COMPLETED" for s, _ in statuses(db).values()), timeout=20
        )
        assert [statuses(db)[i][1]["doubled"] for i in ids] == [0, 2, 4, 6, 8]
        proc.send_signal(signal.SIGTERM)
        notify_socket.wait_for("STOPPING=1")
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, db.with_suffix(".err").read_text()
    events = [
        json.loads(line)["event"]
        for line in db.with_suffix(".out").read_text().splitlines()
        if line.strip()
    ]
    assert "serve_ready" in events and events[-1] == "serve_stopped"


def test_sigterm_lets_the_running_step_finish_within_grace(tmp_path):
    """A task running when SIGTERM arrives finishes (workflow COMPLETED) before serve exits 0; path socket works."""
    db = tmp_path / "edge.db"
    marker = tmp_path / "marker"
    (wid,) = pending_jobs(db, [{"value": 7, "sleep": 1.5, "marker": str(marker)}])
    sock = NotifySocket(tmp_path / "n.sock")
    proc = serve_process(db, JOBS, {"NOTIFY_SOCKET": sock.address, "RUVON_GRACE_SECONDS": "20"})
    try:
        sock.wait_for("READY=1")
        assert wait_until(lambda: marker.exists(), timeout=20)
        proc.send_signal(signal.SIGTERM)
        sock.wait_for("STOPPING=1")
        proc.wait(timeout=30)
    finally:
        sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    status, state = statuses(db)[wid]
    assert (status, state["doubled"]) == ("COMPLETED", 14)


def test_serve_resumes_active_workflows_left_by_a_crash(tmp_path, notify_socket):
    """An ACTIVE workflow nobody heartbeats (its process died between steps) is run to completion by serve."""
    db = tmp_path / "edge.db"

    async def start() -> str:
        registry = WorkflowRegistry(allowed_modules=["worker_app"])
        registry.register_file(JOBS)
        async with WorkflowEngine(SQLitePersistenceProvider(str(db)), registry) as engine:
            return str((await engine.start_workflow("Job", {"value": 4})).id)

    wid = asyncio.run(start())
    proc = serve_process(db, JOBS, {"NOTIFY_SOCKET": notify_socket.address})
    try:
        notify_socket.wait_for("READY=1")
        assert wait_until(lambda: statuses(db)[wid][0] == "COMPLETED", timeout=20)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert statuses(db)[wid][1]["doubled"] == 8

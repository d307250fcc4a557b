"""kill -9 of `ruvon-edge serve` in the middle of ASYNC tasks: after a restart nothing is lost or re-run."""

from __future__ import annotations

import collections
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

WORKER_TESTS = Path(__file__).parents[1] / "worker"
if str(WORKER_TESTS) not in sys.path:
    sys.path.insert(0, str(WORKER_TESTS))

from serve_helpers import JOBS, pending_jobs, serve_process, statuses, wait_until  # noqa: E402


def starts(marker: Path) -> collections.Counter:
    """How often each workflow's task function started, from the marker file."""
    lines = marker.read_text().splitlines() if marker.exists() else []
    return collections.Counter(line.split()[1] for line in lines if line.startswith("start "))


def task_status(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return {r[0]: r[1] for r in conn.execute("SELECT workflow_id, status FROM tasks")}


@pytest.mark.slow
def test_kill_9_mid_async_then_restart_completes_everything_once(tmp_path):
    """Every workflow completes after kill -9 + restart; a task that had COMPLETED is never started again."""
    db, marker = tmp_path / "edge.db", tmp_path / "marker"
    ids = pending_jobs(db, [{"value": v, "sleep": 0.05, "marker": str(marker)} for v in range(60)])
    proc = serve_process(db, JOBS, {"RUVON_CONCURRENCY": "4"})
    try:
        assert wait_until(lambda: sum(starts(marker).values()) >= 15, timeout=30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    completed_at_kill = {w for w, s in task_status(db).items() if s == "COMPLETED"}
    started_at_kill = starts(marker)
    assert 0 < len(completed_at_kill) < len(ids), "the kill must land mid-way"

    proc = serve_process(db, JOBS, {"RUVON_CONCURRENCY": "4"})
    try:
        assert wait_until(
            lambda: all(s == "COMPLETED" for s, _ in statuses(db).values()), timeout=60
        ), statuses(db)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    final = statuses(db)
    assert [final[i][1]["doubled"] for i in ids] == [2 * v for v in range(60)]
    assert set(task_status(db).values()) == {"COMPLETED"}
    after = starts(marker)
    assert all(after[w] == started_at_kill[w] for w in completed_at_kill), (
        "a completed task ran again"
    )
    assert all(after[w] >= 1 for w in ids)

"""kill -9 mid-PARALLEL and mid-LOOP: a real subprocess is killed, then engine.run finishes without redoing work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

ENGINE_TESTS = Path(__file__).resolve().parents[1] / "engine"
if str(ENGINE_TESTS) not in sys.path:
    sys.path.insert(0, str(ENGINE_TESTS))

from steps_fixtures.crash_driver import DEFINITIONS  # noqa: E402
from steps_fixtures.harness import registry_of  # noqa: E402
from steps_fixtures.steps import HANG_ENV  # noqa: E402

from ruvon_edge import WorkflowEngine  # noqa: E402
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider  # noqa: E402

pytestmark = pytest.mark.slow


def run_until_marker_then_kill(
    db: Path, markers: Path, workflow_type: str, data: dict, hang_at: int, marker: str
) -> str:
    """Start the driver, wait for ``marker`` in the marker log, SIGKILL it; return the workflow id."""
    env = {**os.environ, HANG_ENV: str(hang_at), "PYTHONPATH": str(ENGINE_TESTS)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "steps_fixtures.crash_driver",
            str(db),
            workflow_type,
            json.dumps(data),
        ],
        cwd=ENGINE_TESTS,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        workflow_id = proc.stdout.readline().strip()
        deadline = time.monotonic() + 30
        while not (markers.exists() and marker in markers.read_text()):
            assert proc.poll() is None, "the driver exited before reaching the kill point"
            assert time.monotonic() < deadline, f"{marker} never appeared"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return workflow_id


def executions(markers: Path) -> Counter:
    return Counter(line.split()[0] for line in markers.read_text().splitlines())


async def finish(db: Path, workflow_id: str):
    async with WorkflowEngine(
        SQLitePersistenceProvider(str(db)), registry_of(*DEFINITIONS)
    ) as engine:
        return await engine.run(workflow_id)


async def test_kill_mid_parallel_reruns_only_the_unfinished_batch(tmp_path):
    """Killed in the third batch of a fan-out, the restart runs batch 3 again and never batches 1-2."""
    db, markers = tmp_path / "edge.db", tmp_path / "markers.log"
    data = {"items": [0, 1, 2, 3, 4, 5], "marker_dir": str(tmp_path)}
    wf_id = run_until_marker_then_kill(
        db, markers, "KillParallel", data, hang_at=4, marker="item-4"
    )
    wf = await finish(db, wf_id)
    assert wf.status == "COMPLETED" and wf.state.parent_done is True
    assert wf.state.values == [0, 2, 4, 6, 8, 10]
    counts = executions(markers)
    assert [counts[f"item-{i}"] for i in range(6)] == [1, 1, 1, 1, 2, 1]


async def test_kill_mid_loop_resumes_at_the_interrupted_iteration(tmp_path):
    """Killed in iteration 3, the restart runs iteration 3 again, then 4 and 5; 0-2 never run twice."""
    db, markers = tmp_path / "edge.db", tmp_path / "markers.log"
    data = {"items": [1, 2, 3, 4, 5, 6], "total": 0, "seen": [], "marker_dir": str(tmp_path)}
    wf_id = run_until_marker_then_kill(db, markers, "KillLoop", data, hang_at=3, marker="iter-3")
    wf = await finish(db, wf_id)
    assert wf.status == "COMPLETED" and wf.state.parent_done is True
    assert wf.state.total == 21 and wf.state.seen == [0, 1, 2, 3, 4, 5]
    counts = executions(markers)
    assert [counts[f"iter-{i}"] for i in range(6)] == [1, 1, 1, 2, 1, 1]

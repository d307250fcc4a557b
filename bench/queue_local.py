"""ASYNC tasks through `ruvon-edge serve` vs huey (SqliteHuey), same machine, same run; plus kill -9 losses.

    python bench/queue_local.py [--tasks 2000]

Both sides run the same trivial task: append one line (task id, time) to a
marker file. Throughput is (tasks - 1) / (last line time - first line time),
so process start-up is not counted on either side. For ours every task is a
whole ASYNC step: claim, run, finish the task row, merge into the workflow,
commit the step, run the workflow on to COMPLETED. The kill test sends
SIGKILL once a third of the tasks ran, restarts the worker and counts task
ids that never ran (lost) and ids that ran twice (re-runs). huey is
installed into bench/.venv-huey on first use. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HUEY_VENV = HERE / ".venv-huey"
HUEY_APP = """
import os, time
from huey import SqliteHuey
huey = SqliteHuey(filename=os.environ["HUEY_DB"])

@huey.task()
def trivial(i):
    fd = os.open(os.environ["QUEUE_MARK"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, f"{i} {time.time()}\\n".encode())
    os.close(fd)
"""
DEFINITION = """
workflow_type: QueueBench
steps:
  - name: Work
    type: ASYNC
    function: queue_local.trivial
"""


def trivial(state, context):
    """The task of our side: one marker line, like huey's."""
    fd = os.open(os.environ["QUEUE_MARK"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, f"{context.workflow_id} {time.time()}\n".encode())
    os.close(fd)
    return {}


# -- measuring ---------------------------------------------------------------------------


def marker_lines(mark: Path) -> list[tuple[str, float]]:
    if not mark.exists():
        return []
    out = []
    for line in mark.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out.append((parts[0], float(parts[1])))
    return out


def wait_lines(mark: Path, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(marker_lines(mark)) >= n:
            return True
        time.sleep(0.05)
    return False


def rate(mark: Path) -> tuple[float, float]:
    """Tasks/s between the first and last marker line, and the time per task in ms."""
    stamps = sorted(t for _, t in marker_lines(mark))
    span = stamps[-1] - stamps[0]
    per_s = (len(stamps) - 1) / span if span > 0 else float("inf")
    return per_s, 1000 / per_s


def losses(mark: Path, ids: list[str]) -> tuple[int, int]:
    """(ids that never ran, extra runs)."""
    seen = [i for i, _ in marker_lines(mark)]
    return len(set(ids) - set(seen)), len(seen) - len(set(seen))


def kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        kill9(proc)


# -- ours --------------------------------------------------------------------------------


def ours_prepare(db: Path, n: int) -> list[str]:
    """n workflows parked PENDING_ASYNC with their task queued."""
    sys.path.insert(0, str(HERE))
    from ruvon_edge import WorkflowEngine, WorkflowRegistry
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    async def go() -> list[str]:
        registry = WorkflowRegistry(allowed_modules=["queue_local"])
        registry.register_yaml(DEFINITION)
        async with WorkflowEngine(SQLitePersistenceProvider(str(db)), registry) as engine:
            ids = []
            for _ in range(n):
                wf = await engine.run((await engine.start_workflow("QueueBench", {})).id)
                ids.append(str(wf.id))
            return ids

    return asyncio.run(go())


def ours_serve(db: Path, mark: Path, concurrency: int) -> subprocess.Popen:
    code = (
        "import sys; from ruvon_edge._cli_config import Settings; from ruvon_edge.worker import main;"
        f"sys.exit(main(Settings(db={str(db)!r}, allow_modules=['queue_local'], module_path=[{str(HERE)!r}],"
        f" definitions=[{str(db.with_suffix('.yaml'))!r}])))"
    )
    env = {**os.environ, "QUEUE_MARK": str(mark), "RUVON_CONCURRENCY": str(concurrency),
           "RUVON_POLL_INTERVAL": "0.05", "RUVON_ZOMBIE_THRESHOLD": "2"}  # fmt: skip
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL)


def ours_completed(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM workflows WHERE status = 'COMPLETED'").fetchone()[
            0
        ]


def ours_run(work: Path, n: int, concurrency: int, kill: bool) -> dict:
    tag = f"ours-c{concurrency}-{'kill' if kill else 'run'}"
    db, mark = work / f"{tag}.db", work / f"{tag}.mark"
    db.with_suffix(".yaml").write_text(DEFINITION)
    ids = ours_prepare(db, n)
    proc = ours_serve(db, mark, concurrency)
    if kill:
        wait_lines(mark, n // 3, 120)
        kill9(proc)
        proc = ours_serve(db, mark, concurrency)
    deadline = time.monotonic() + 300
    while ours_completed(db) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    stop(proc)
    lost, reruns = losses(mark, ids)
    return {
        "name": f"ruvon-edge serve (concurrency {concurrency})",
        "rate": rate(mark),
        "lost": lost,
        "reruns": reruns,
    }


# -- huey --------------------------------------------------------------------------------


def huey_python() -> str:
    python = HUEY_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(HUEY_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "huey"], check=True)
    return str(python)


def huey_run(work: Path, n: int, workers: int, kill: bool) -> dict:
    tag = f"huey-w{workers}-{'kill' if kill else 'run'}"
    db, mark = work / f"{tag}.db", work / f"{tag}.mark"
    env = {**os.environ, "HUEY_DB": str(db), "QUEUE_MARK": str(mark), "PYTHONPATH": str(work)}
    python = huey_python()
    subprocess.run(
        [python, "-c", f"import hueyapp; [hueyapp.trivial(i) for i in range({n})]"],
        env=env,
        check=True,
    )
    consumer = [python, "-m", "huey.bin.huey_consumer", "hueyapp.huey", "-w", str(workers), "-k", "thread",
                "-d", "0.01", "-m", "0.1", "-q"]  # fmt: skip

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            consumer, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    proc = start()
    if kill:
        wait_lines(mark, n // 3, 120)
        kill9(proc)
        proc = start()
    deadline, last, stable_since = time.monotonic() + 300, -1, time.monotonic()
    while time.monotonic() < deadline:  # done when all ran, or nothing moved for 2 s (lost tasks)
        count = len(marker_lines(mark))
        if count >= n:
            break
        if count != last:
            last, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since > 2:
            break
        time.sleep(0.05)
    stop(proc)
    lost, reruns = losses(mark, [str(i) for i in range(n)])
    return {"name": f"huey SqliteHuey ({workers} worker{'s' if workers > 1 else ''})", "rate": rate(mark),
            "lost": lost, "reruns": reruns}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ruvon-queue-bench-") as tmp:
        work = Path(tmp)
        (work / "hueyapp.py").write_text(HUEY_APP)
        rows = []
        for label, runner in (("ours", ours_run), ("huey", huey_run)):
            for width in (1, 8) if label == "ours" else (1, 4):
                measured = runner(work, args.tasks, width, kill=False)
                killed = runner(work, args.tasks, width, kill=True)
                rows.append((measured, killed))
    print(f"\n{args.tasks} trivial tasks per run; kill -9 after a third, then restart.\n")
    print("| queue | tasks/s | ms per task | lost at kill -9 | re-run after kill -9 |")
    print("|---|---:|---:|---:|---:|")
    for measured, killed in rows:
        per_s, ms = measured["rate"]
        print(
            f"| {measured['name']} | {per_s:,.0f} | {ms:.3f} | {killed['lost']} | {killed['reruns']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

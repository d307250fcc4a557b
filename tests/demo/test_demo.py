"""The README's main job runs end to end: payments on a till, synced to a local receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_runs_every_payment_and_syncs_them_all(tmp_path):
    """`ruvon-edge demo --json` runs the workload, syncs every workflow and leaves nothing on the device."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruvon_edge.cli",
            "demo",
            "--json",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    outcomes = summary["outcomes"]
    assert outcomes["approved by a manager"] == 1 and outcomes["declined by a manager"] == 1
    assert outcomes["FAILED_ROLLED_BACK"] == 1
    assert summary["receiver_totals"]["workflows"] == summary["payments"] == 23
    assert summary["receiver_totals"]["audit_logs"] == summary["sync"]["audit_logs_acked"] > 0
    assert summary["left_on_device"] == 0


def test_demo_cleans_up_honours_db_and_ends_with_the_commands_to_look(tmp_path):
    """Without --workdir/--keep the temp dir is gone after the run, --db is where the device data went,
    and the summary ends with the commands that show what was synced."""
    db = tmp_path / "till.db"
    result = subprocess.run(
        [sys.executable, "-m", "ruvon_edge.cli", "demo", "--payments", "2", "--db", str(db)],
        capture_output=True, text=True, timeout=240, env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert db.exists() and not list(tmp_path.glob("ruvon-demo-*"))
    lines = result.stdout.splitlines()
    assert "(removed; --keep keeps them)" in next(line for line in lines if "files" in line)
    look = lines[
        lines.index("look at what was synced (after a run with --keep or --workdir DIR):") + 1 :
    ]
    assert [line.split()[:2] for line in look] == [
        ["ruvon-edge", "list"],
        ["ruvon-sync", "status"],
        ["ruvon-cloud", "workflows"],
        ["ruvon-cloud", "show"],
    ]
    assert f"--db {db}" in look[0]


def test_demo_refuses_an_existing_db_in_one_line(tmp_path):
    """--db naming an existing file exits 2 with one line and leaves the file alone."""
    db = tmp_path / "edge.db"
    db.write_bytes(b"keep me")
    result = subprocess.run(
        [sys.executable, "-m", "ruvon_edge.cli", "demo", "--db", str(db)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "already exists" in result.stderr and db.read_bytes() == b"keep me"

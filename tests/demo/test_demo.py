"""The README's main job runs end to end: payments on a till, synced to a local receiver."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_runs_every_payment_and_syncs_them_all(tmp_path):
    """`ruvon-edge demo --json` runs the workload, syncs every workflow and leaves nothing on the device."""
    result = subprocess.run(
        [sys.executable, "-m", "ruvon_edge.cli", "demo", "--json", "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    outcomes = summary["outcomes"]
    assert outcomes["approved by a manager"] == 1 and outcomes["declined by a manager"] == 1
    assert outcomes["FAILED_ROLLED_BACK"] == 1
    assert summary["receiver_totals"]["workflows"] == summary["payments"] == 23
    assert summary["receiver_totals"]["audit_logs"] == summary["sync"]["audit_logs_acked"] > 0
    assert summary["left_on_device"] == 0

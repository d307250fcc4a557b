"""The shipped systemd units are valid and carry the settings the product promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
NAMES = ["ruvon-edge.service", "ruvon-sync.service", "ruvon-cloud.service"]


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    """`systemd-analyze verify` reports no error and no warning for any unit (binaries pointed at this venv)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    bindir = str(Path(sys.executable).parent) + "/"
    for name in NAMES:
        (tmp_path / name).write_text((UNITS / name).read_text().replace("/opt/ruvon/bin/", bindir))
    out = subprocess.run([analyze, "verify", "--man=no", *(str(tmp_path / n) for n in NAMES)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr


@pytest.mark.parametrize("name", NAMES)
def test_units_have_notify_watchdog_restart_state_and_hardening(name):
    """Each unit is Type=notify with a watchdog, restarts on failure, owns a state directory and is hardened."""
    lines = {
        line.split("=", 1)[0]
        for line in (UNITS / name).read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    required = {"Type", "WatchdogSec", "Restart", "RestartSec", "TimeoutStopSec", "StateDirectory", "NoNewPrivileges",
                "ProtectSystem", "ProtectHome", "PrivateTmp", "RestrictAddressFamilies", "SystemCallFilter"}  # fmt: skip
    assert required <= lines
    text = (UNITS / name).read_text()
    assert "Type=notify" in text and "Restart=on-failure" in text
    if name == "ruvon-sync.service":
        assert "LoadCredential=ruvon-sync-secret:" in text and "After=network-online.target" in text

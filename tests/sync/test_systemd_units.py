"""The shipped systemd units are valid and carry the settings the product promises."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
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


def _settings(name: str) -> list[tuple[str, str]]:
    return [
        tuple(line.split("=", 1))  # type: ignore[misc]
        for line in (UNITS / name).read_text().splitlines()
        if "=" in line and not line.startswith("#")
    ]


@pytest.mark.parametrize("name", NAMES)
def test_security_exposure_stays_at_1_4_or_better(name, tmp_path):
    """`systemd-analyze security --offline` rates every unit's exposure at 1.4 or lower (the level measured before)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    unit = tmp_path / name
    unit.write_text(
        (UNITS / name)
        .read_text()
        .replace("/opt/ruvon/bin/", str(Path(sys.executable).parent) + "/")
    )
    out = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(unit)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    level = re.search(rf"Overall exposure level for {re.escape(name)}: (\d+\.\d+)", out.stdout)
    assert level is not None, out.stdout + out.stderr
    assert float(level.group(1)) <= 1.4


@pytest.mark.parametrize("name", NAMES)
def test_bad_usage_is_not_restarted(name):
    """Exit 2 (a bad definition or setting) is final: no crash loop every RestartSec."""
    assert ("RestartPreventExitStatus", "2") in _settings(name)


def test_sync_waits_for_time_sync():
    """ruvon-sync wants and starts after time-sync.target: a board without an RTC boots with a stale clock."""
    settings = _settings("ruvon-sync.service")
    for key in ("Wants", "After"):
        assert any(k == key and "time-sync.target" in v.split() for k, v in settings), key


def test_readme_creates_every_user_and_group_the_units_name():
    """Each User=/Group= of a unit is created by a `useradd` line in the README's systemd section."""
    readme = (UNITS.parent / "README.md").read_text()
    section = readme.split("## Running under systemd", 1)[1].split("\n## ", 1)[0]
    created = set(re.findall(r"useradd [^\n]*?(\S+)\s*$", section, re.MULTILINE))
    named = {v for name in NAMES for k, v in _settings(name) if k in ("User", "Group")}
    assert named and named <= created, (named, created)


def test_cloud_unit_takes_host_and_port_from_its_env_file(tmp_path):
    """The receiver's ExecStart, expanded as systemd does from Environment= and the env file, serves on that port."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env: dict[str, str] = {}
    for key, value in _settings("ruvon-cloud.service"):
        if key == "Environment":
            env.update(item.split("=", 1) for item in value.split())
    example = (UNITS / "ruvon-cloud.env.example").read_text()
    env.update(
        line.split("=", 1)
        for line in example.splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert env["RUVON_CLOUD_HOST"] == "127.0.0.1" and env["RUVON_CLOUD_PORT"] == "8700"
    env.update(RUVON_CLOUD_PORT=str(port), RUVON_CLOUD_STORE=f"sqlite:///{tmp_path / 'cloud.db'}")
    [exec_start] = [v for k, v in _settings("ruvon-cloud.service") if k == "ExecStart"]
    argv = [re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], word) for word in exec_start.split()]
    argv[0] = argv[0].replace("/opt/ruvon/bin/", str(Path(sys.executable).parent) + "/")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ruvon-cloud-master-key").write_text("ab" * 32)
    log = tmp_path / "cloud.err"
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, env={**os.environ, "CREDENTIALS_DIRECTORY": str(creds)},
                                stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/v1/health", timeout=1
                ) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "no answer on the port from the env file"
                time.sleep(0.1)  # polling the port until it answers
    finally:
        proc.terminate()
        proc.wait(timeout=30)

"""The README's receiver set-up, run verbatim from a non-root working directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(heading: str) -> list[str]:
    """The command lines of the first ```bash block after ``heading``."""
    text = README.read_text()
    section = text[text.index(heading) :]
    body = section[section.index("```bash\n") + len("```bash\n") :]
    return [line for line in body[: body.index("```")].splitlines() if line.strip()]


def test_the_readme_receiver_setup_runs_verbatim(tmp_path):
    """Every line but `pip install` runs as written, in a private mount (and network) namespace, from a working directory that is not /.

    /var/lib is a fresh tmpfs inside the namespace, so the host's is never touched.
    """
    lines = readme_block("### The receiver (`ruvon-cloud`)")
    assert lines[0].startswith("pip install") and any(" serve " in line for line in lines)
    netns = shutil.which("ip") is not None
    work = tmp_path / "work"
    work.mkdir()
    script = "\n".join([
        "set -eu",
        "ip link set lo up" if netns else ":",
        "mount -t tmpfs tmpfs /var/lib",
        f"cd {work}",
        *lines[1:],
        "kill $!",
        "wait",
    ])  # fmt: skip
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RUVON_CLOUD_STORE", None)
    env.pop("RUVON_CLOUD_MASTER_KEY_FILE", None)
    run = subprocess.run(["unshare", "-m" + ("n" if netns else ""), "sh", "-c", script],
                         capture_output=True, text=True, timeout=180, env=env)  # fmt: skip
    if run.returncode != 0 and "unshare failed" in run.stderr:
        reason = f"cannot make a private mount namespace here: {run.stderr.strip()}"
        if os.environ.get("RUVON_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + "; RUVON_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(reason)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout.splitlines()
    key = json.loads(out[0])
    assert (
        key["device_id"] == "pos-17"
        and key["key_id"].startswith("rk_")
        and len(key["secret"]) == 64
    )
    assert "created a new master key at /var/lib/ruvon-cloud/cloud.db.master-key" in run.stderr
    assert '{"status": "ready"}' in run.stdout and "ruvon_cloud_store_up 1" in run.stdout
    assert any(
        line.startswith("pos-17") and "STALE" in line for line in out
    )  # registered, never seen
    assert "no workflows match" in run.stdout and key["key_id"] in run.stdout
    assert not any(work.iterdir()), "nothing may land in the working directory"

"""`ruvon-cloud add-device` and `serve` as a user runs them: key printed once, secret not stored, health served."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import httpx
from sync.harness import free_port


def _cloud(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "ruvon_cloud.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        **kw,
    )


def test_add_device_prints_key_once_and_stores_no_secret(tmp_path):
    """add-device --json prints device, key id and secret; the database holds no copy of the secret; the master key is 0600."""
    store = f"sqlite:///{tmp_path / 'cloud.db'}"
    out = _cloud("add-device", "pos-1", "--store", store, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) == {"device_id", "key_id", "secret"} and doc["device_id"] == "pos-1"
    dump = "\n".join(sqlite3.connect(tmp_path / "cloud.db").iterdump())
    assert doc["key_id"] in dump and doc["secret"] not in dump
    assert os.stat(tmp_path / "cloud.db.master-key").st_mode & 0o777 == 0o600


def test_bad_usage_exits_2_with_one_line(tmp_path):
    """A missing or unsupported store is exit code 2 with a one-line error and no traceback."""
    out = _cloud("add-device", "pos-1", "--store", "mysql://x")
    assert (
        out.returncode == 2
        and "unsupported store URL" in out.stderr
        and "Traceback" not in out.stderr
    )
    out = _cloud(
        "add-device", "pos-1", env={k: v for k, v in os.environ.items() if k != "RUVON_CLOUD_STORE"}
    )
    assert out.returncode == 2 and "--store is required" in out.stderr


def test_serve_answers_health_and_stops_on_sigterm(tmp_path):
    """serve listens on 127.0.0.1, answers /v1/health, and exits 0 on SIGTERM."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ruvon_cloud.cli", "serve", "--store", f"sqlite:///{tmp_path / 'c.db'}", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/health")
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, (
                    proc.stderr.read() if proc.poll() is not None else "no answer"
                )
                time.sleep(0.1)
        assert r.json() == {"status": "ok"}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err

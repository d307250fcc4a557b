"""One ``ruvon-edge serve`` per database: a second real process is refused; kill -9 frees the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess

from device import CODE, EDGE, YAML, edge, one_line


def start_serve(db) -> subprocess.Popen:
    """A real ``serve`` on ``db``; returns once it logged ``serve_ready`` (its readiness event)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUVON_")}
    proc = subprocess.Popen([*EDGE, "serve", "--db", str(db), "--definitions", str(YAML), *CODE],
                            env={**env, "RUVON_POLL_INTERVAL": "0.2"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    for line in proc.stdout:
        if json.loads(line).get("event") == "serve_ready":
            return proc
    proc.wait(30)
    raise AssertionError(f"serve did not start: {proc.stderr.read()}")


def finish(proc: subprocess.Popen) -> int:
    code = proc.wait(60)
    proc.stdout.close()
    proc.stderr.close()
    return code


def test_a_second_serve_is_refused_and_kill_9_releases_the_lock(tmp_path):
    """While one serve runs a second exits 1 with one line; after kill -9 of the first a new serve starts."""
    db = tmp_path / "edge.db"
    first = start_serve(db)
    try:
        second = edge("serve", "--db", str(db), "--definitions", str(YAML), *CODE, timeout=60)
        line = one_line(second, 1)
        assert line == (
            f"ruvon-edge: error: another ruvon-edge serve is running on {db} (it holds {db}.serve.lock)"
        )
        assert first.poll() is None  # the first one was never disturbed
    finally:
        first.send_signal(signal.SIGKILL)
        assert finish(first) == -signal.SIGKILL
    third = start_serve(db)
    third.send_signal(signal.SIGTERM)
    assert finish(third) == 0


def test_run_and_list_are_not_blocked_by_a_serving_worker(tmp_path):
    """The serve lock guards only serve: run and list work beside it."""
    db = tmp_path / "edge.db"
    server = start_serve(db)
    try:
        ran = edge("run", str(YAML), *CODE, "--db", str(db), "--json", "--data", '{"amount": 3}')
        assert ran.returncode == 0 and json.loads(ran.stdout)["status"] == "COMPLETED", ran.stderr
        listed = edge("list", "--db", str(db), "--json")
        assert [d["status"] for d in json.loads(listed.stdout)] == ["COMPLETED"]
    finally:
        server.send_signal(signal.SIGTERM)
        assert finish(server) == 0

"""A real ``ruvon-cloud serve`` process on 127.0.0.1, the CLI in a subprocess, and signed requests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from sync.harness import free_port

from sync_agent import protocol


def cloud_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``ruvon-cloud`` (the real entry point) and wait."""
    return subprocess.run(
        [sys.executable, "-m", "ruvon_cloud.cli", *args],
        capture_output=True, text=True, timeout=60, cwd=cwd, env={**os.environ, **(env or {})},
    )  # fmt: skip


def workflow(**over) -> dict:
    """A valid wire workflow (a fresh id each call)."""
    wf = {"id": str(uuid.uuid4()), "workflow_type": "Payment", "workflow_version": "1", "status": "COMPLETED",
          "state": {"amount": 5}, "current_step": "done", "parent_id": None, "idempotency_key": None,
          "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:01Z",
          "completed_at": "2026-01-01T00:00:01Z", "sync_version": 3}  # fmt: skip
    return {**wf, **over}


def audit(wid: str, **over) -> dict:
    """A valid wire audit row of workflow ``wid``."""
    return {"audit_id": str(uuid.uuid4()), "workflow_id": wid, "event_type": "STEP_EXECUTED", "step_name": "a",
            "old_status": "ACTIVE", "new_status": "COMPLETED", "details": {}, "recorded_at": "2026-01-01T00:00:01Z", **over}  # fmt: skip


def batch_body(device: str, workflows=(), audits=(), **extra) -> tuple[str, bytes]:
    """A batch's id and its JSON bytes."""
    batch_id = str(uuid.uuid4())
    doc = {"batch_id": batch_id, "device_id": device, "sent_at": "2026-01-01T00:00:02Z",
           "workflows": list(workflows), "audit_logs": list(audits), **extra}  # fmt: skip
    return batch_id, json.dumps(doc).encode()


class Served:
    """``ruvon-cloud serve`` in a subprocess (a SQLite store in ``tmp`` unless ``store``); one device key made by the CLI.

    The master key is ``tmp/master.key`` (via ``RUVON_CLOUD_MASTER_KEY_FILE``):
    pass ``env=rx.env`` to other ``cloud_cli`` calls that need it.
    """

    def __init__(
        self, tmp: Path, *flags: str, device: str = "pos-1", store: str | None = None
    ) -> None:
        self.tmp, self.flags, self.device = tmp, flags, device
        self.store = store or f"sqlite:///{tmp / 'cloud.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "serve.log"
        self.env = {**os.environ, "RUVON_CLOUD_MASTER_KEY_FILE": str(tmp / "master.key")}
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Served:
        added = cloud_cli("add-device", self.device, "--store", self.store, "--json", env=self.env)
        assert added.returncode == 0, added.stderr
        key = json.loads(added.stdout)
        self.key_id, self.secret = key["key_id"], key["secret"]
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ruvon_cloud.cli", "serve", "--store", self.store, "--port", str(self.port), *self.flags],
                stdout=subprocess.DEVNULL, stderr=log, env=self.env,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.url + "/v1/health")
                return self
            except httpx.ConnectError:
                assert self.proc.poll() is None, self.log_path.read_text()
                assert time.monotonic() < deadline, "receiver did not start"
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)

    def post(self, body: bytes, batch_id: str, *, kind: str = "batches", key_id=None, secret=None,
             extra: dict | None = None) -> httpx.Response:  # fmt: skip
        """POST ``body`` signed with this device's key (or the given one)."""
        path = f"/v1/devices/{self.device}/{kind}"
        headers = protocol.signed_headers(
            key_id or self.key_id, secret or self.secret, path, body, batch_id
        )
        return httpx.post(
            self.url + path, content=body, headers={**headers, **(extra or {})}, timeout=60
        )

    def send(self, workflows=(), audits=(), **kw) -> httpx.Response:
        """Sign and POST one batch of these records."""
        batch_id, body = batch_body(self.device, workflows, audits)
        return self.post(body, batch_id, **kw)

    def logs(self) -> list[dict]:
        """The JSON lines the server wrote so far (every stderr line must be one)."""
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

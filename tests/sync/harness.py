"""Real parts for sync tests: device data, a real receiver, a fault-injecting proxy, agent runs.

* ``Receiver``: the real ``ruvon_cloud`` app under uvicorn on 127.0.0.1, in a
  thread, with a real SQLite store (inspected with plain sqlite3).
* ``FaultProxy``: a scriptable HTTP server on 127.0.0.1 in front of it; a
  script decides per request to forward, drop the answer, answer something
  else, or change what the receiver sees -- the wire stays real both ways.
* ``agent_settings`` / ``drain``: the in-process agent; ``sync_cli`` the
  console entry point in a subprocess (for kill -9 and SIGTERM).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ruvon_cloud.app import ReceiverApp
from ruvon_cloud.auth import KeyRing
from ruvon_cloud.sqlite_store import SQLiteStore
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon_edge.providers.persistence import Transition
from sync_agent.agent import SyncAgent
from sync_agent.report import CycleReport
from sync_agent.settings import SyncSettings
from sync_agent.transport import Transport

DEVICE = "pos-17"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def make_finished(
    provider,
    n: int,
    audit_per: int = 5,
    *,
    status: str = "COMPLETED",
    state: dict | None = None,
    **fields,
) -> list[str]:
    """Create ``n`` finished workflows with ``audit_per`` audit rows each; return their ids."""
    ids = []
    for start in range(0, n, 500):
        transitions = []
        for _ in range(min(500, n - start)):
            wid = str(uuid.uuid4())
            ids.append(wid)
            audit = [
                {"event_type": "STEP_EXECUTED", "step_name": f"s{i}", "old_status": "ACTIVE",
                 "new_status": "ACTIVE", "details": {"i": i}}
                for i in range(audit_per)
            ]  # fmt: skip
            wf = {"id": wid, "workflow_type": "Payment", "workflow_version": "1.0", "status": status,
                  "state": state if state is not None else {"amount": 42}, "current_step": "done", **fields}  # fmt: skip
            transitions.append(Transition(workflow=wf, expected_version=None, audit=audit))
        await provider.commit(transitions)
    return ids


def run_in_thread(coro_fn: Callable[[], object]) -> object:
    """Run ``asyncio.run(coro_fn())`` on a fresh thread (usable from inside a running loop)."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(coro_fn())))
    thread.start()
    thread.join()
    return out[0] if out else None


def local_ids(db: Path) -> set[str]:
    """Workflow ids still on the device."""
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM workflows")}


class Receiver:
    """The real receiver (SQLite store) served by uvicorn in a thread on 127.0.0.1."""

    def __init__(self, tmp: Path, **limits) -> None:
        self.db = tmp / "cloud.db"
        self.keyring = KeyRing.from_file(tmp / "cloud.master-key")
        self.key_id = self.keyring.new_key_id()
        self.secret = self.keyring.secret_for(self.key_id, DEVICE)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.limits = limits
        self._server = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Receiver:
        import uvicorn

        async def register() -> None:
            store = SQLiteStore(str(self.db))
            await store.initialize()
            await store.add_key(self.key_id, DEVICE)
            await store.close()

        run_in_thread(register)
        app = ReceiverApp(SQLiteStore(str(self.db)), self.keyring, **self.limits)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="error", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # a thread cannot own signals
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("receiver did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def rows(self, table: str) -> list[tuple]:
        """Every stored row's key: (id, sync_version) for workflows, audit_id for audit logs."""
        cols = "id, sync_version" if table == "workflows" else "audit_id"
        with sqlite3.connect(self.db) as conn:
            return conn.execute(f"SELECT {cols} FROM {table}").fetchall()


@dataclass
class Seen:
    """One request the proxy received."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes


Script = Callable[[int, Seen], object]


@dataclass
class FaultProxy:
    """A scriptable HTTP server in front of ``upstream``; ``script(n, request)`` picks the action.

    Actions: ``"forward"``; ``"forward-drop"`` (receiver commits, the answer is
    lost); ``("forward-then", fn)`` (forward, call ``fn()``, then answer);
    ``("respond", status, body_bytes, headers)``; ``("sleep-forward", s)``;
    ``("trickle", s)`` (a 200 whose body arrives one byte every ``s`` seconds, forever).
    """

    upstream: str
    script: Script = lambda n, req: "forward"  # noqa: E731
    seen: list[Seen] = field(default_factory=list)
    response_filter: Callable[[dict], dict] | None = None

    def __enter__(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                req = Seen(time.monotonic(), self.path, dict(self.headers.items()), body)
                proxy.seen.append(req)
                action = proxy.script(len(proxy.seen), req)
                if isinstance(action, tuple) and action[0] == "respond":
                    _, status, payload, headers = action
                    return self._answer(status, payload, headers)
                if isinstance(action, tuple) and action[0] == "trickle":
                    return self._trickle(action[1])
                if isinstance(action, tuple) and action[0] == "sleep-forward":
                    time.sleep(action[1])
                status, payload, headers = proxy.forward(req)
                if action == "forward-drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if isinstance(action, tuple) and action[0] == "forward-then":
                    action[1]()
                if proxy.response_filter and status == 200:
                    payload = json.dumps(proxy.response_filter(json.loads(payload))).encode()
                return self._answer(status, payload, headers)

            def _trickle(self, every: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(1 << 30))
                self.end_headers()
                try:
                    while True:  # until the client gives up and closes the connection
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(every)
                except OSError:
                    self.close_connection = True

            def _answer(self, status: int, payload: bytes, headers: dict) -> None:
                try:
                    self.send_response_only(status)
                    if "Date" not in headers:  # a script may answer with its own clock
                        self.send_header("Date", self.date_time_string())
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = (
                        True  # the agent is gone (killed, or it gave up): the fault itself
                    )

            def finish(self) -> None:
                try:
                    super().finish()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def forward(
        self, req: Seen, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, bytes, dict]:
        """Send the request (or a changed one) to the receiver; return its status, body, headers."""
        host, port = self.upstream.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request(
                "POST", req.path, body if body is not None else req.body, headers or req.headers
            )
            r = conn.getresponse()
            keep = {k: v for k, v in r.getheaders() if k.lower() in ("content-type", "retry-after")}
            return r.status, r.read(), keep
        finally:
            conn.close()


def agent_settings(db: Path, url: str, receiver: Receiver, **overrides) -> SyncSettings:
    """Settings for the in-process agent, with fast backoff for tests."""
    values = {"db": db, "url": url, "device_id": DEVICE, "key_id": receiver.key_id, "secret": receiver.secret,
              "timeout": 5.0, "attempts": 3, "backoff_base": 0.05, "backoff_max": 0.5, "page_size": 100,
              "batch_records": 300, **overrides}  # fmt: skip
    return SyncSettings.model_validate(values)


async def drain(
    settings: SyncSettings, stop: asyncio.Event | None = None, **provider_kw
) -> CycleReport:
    """Run one agent cycle in this process against a fresh provider on the same file."""
    provider = SQLitePersistenceProvider(settings.db, **provider_kw)
    async with provider, Transport(settings, stop) as transport:
        return await SyncAgent(provider, settings, transport).drain()


def sync_cli(
    *args: str, env: dict | None = None, timeout: float = 60, umask: int | None = None
) -> subprocess.CompletedProcess:
    """Run ``ruvon-sync`` (the real entry point) in a subprocess and wait."""
    return subprocess.run(
        [sys.executable, "-m", "sync_agent.cli", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )  # fmt: skip


def cli_flags(db: Path, url: str, receiver: Receiver, **extra) -> list[str]:
    """The flags ``ruvon-sync once|run`` needs, plus ``extra`` settings."""
    flags = ["--db", str(db), "--url", url, "--device-id", DEVICE, "--key-id", receiver.key_id,
             "--secret", receiver.secret, "--backoff-base", "0.05", "--backoff-max", "0.5", "--timeout", "5"]  # fmt: skip
    for k, v in extra.items():
        flags += ["--" + k.replace("_", "-"), str(v)]
    return flags

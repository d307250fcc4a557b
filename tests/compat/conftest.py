"""Corpus fixtures: the reference-style step package on sys.path, a real SQLite engine, a local HTTP server."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


class _Handler(BaseHTTPRequestHandler):
    """Answers every POST/GET/PUT with the JSON the test scripted for its path, recording the request."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        server = self.server
        server.requests.append(  # type: ignore[attr-defined]
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        status, payload = server.routes.get(self.path.split("?")[0], (404, {"error": "no route"}))  # type: ignore[attr-defined]
        if callable(payload):
            payload = payload(json.loads(body or b"null"))
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1 (ephemeral port); set ``.routes[path] = (status, json | fn(body))``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.routes = {}  # type: ignore[attr-defined]
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()

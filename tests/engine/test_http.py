"""HTTP steps against a real threaded HTTP server on 127.0.0.1: rendering, retries, statuses, timeouts."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from steps_fixtures.harness import registry_of

from ruvon_edge import WorkflowEngine

SECRET = "Bearer s3cr3t-token-value"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.hits: dict[str, int] = defaultdict(int)


class _Handler(BaseHTTPRequestHandler):
    """Routes: /echo, /flaky (500 then 200), /limited/N (429 Retry-After N then 200), /always500, /status/C, /slow."""

    server: _Server

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _answer(self, code: int, payload: object = None, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        record = {
            "method": self.command,
            "path": url.path,
            "query": {k: v[0] for k, v in parse_qs(url.query).items()},
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": raw.decode(),
        }
        self.server.requests.append(record)
        self.server.hits[url.path] += 1
        hits = self.server.hits[url.path]
        parts = url.path.strip("/").split("/")
        if parts[0] == "echo":
            self._answer(200, {"status": "shipped", "request": record})
        elif parts[0] == "flaky":
            self._answer(500 if hits == 1 else 200, {"hits": hits})
        elif parts[0] == "limited":
            if hits == 1:
                self._answer(429, {"slow": "down"}, {"Retry-After": parts[1]})
            else:
                self._answer(200, {"hits": hits})
        elif parts[0] == "always500":
            self._answer(500, {"error": "down"})
        elif parts[0] == "status":
            self._answer(int(parts[1]), {"code": parts[1]})
        elif parts[0] == "slow":
            time.sleep(2)
            self._answer(200, {})
        else:
            self._answer(404, {})

    do_GET = do_POST = do_PUT = _handle


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def http_workflow(name: str, config: str) -> str:
    return f"""
workflow_type: {name}
steps:
  - name: Call
    type: HTTP
    http_config:
{config}
"""


DEFINITIONS = (
    http_workflow(
        "Ship",
        """      method: POST
      url: "{{ state.base }}/echo/{{ state.order_id }}"
      headers: {Authorization: "{{ state.token }}", X-Order: "{{ state.order_id }}"}
      params: {region: "{{ state.region }}", fixed: "1"}
      json: {id: "{{ state.order_id }}", lines: ["{{ state.region }}", 2]}
      output_key: shipping
      response_mapping: {ship_status: body.status, ship_code: status_code}""",
    ),
    http_workflow("Default", '      url: "{{ state.base }}/echo/x"'),
    http_workflow(
        "Flaky",
        '      url: "{{ state.base }}/flaky"\n      retry: {max_attempts: 3, backoff_seconds: 0.01}\n      output_key: r',
    ),
    http_workflow(
        "Limited",
        '      url: "{{ state.base }}/limited/{{ state.wait }}"\n'
        "      retry: {max_attempts: 2, backoff_seconds: 0, max_backoff_seconds: 0.3}\n      output_key: r",
    ),
    http_workflow(
        "LimitedLong",
        '      url: "{{ state.base }}/limited/{{ state.wait }}"\n'
        "      retry: {max_attempts: 2, backoff_seconds: 0, max_backoff_seconds: 5}\n      output_key: r",
    ),
    http_workflow(
        "Down",
        '      url: "{{ state.base }}/always500?token={{ state.token }}"\n'
        '      headers: {Authorization: "{{ state.token }}"}\n'
        "      retry: {max_attempts: 3, backoff_seconds: 0.01}",
    ),
    http_workflow("NotFound", '      url: "{{ state.base }}/status/404"'),
    http_workflow(
        "Accepts404",
        '      url: "{{ state.base }}/status/404"\n      expected_status: [404]\n      output_key: r\n      includes: [status_code]',
    ),
    http_workflow("Slow", '      url: "{{ state.base }}/slow"\n      timeout: 0.3'),
    http_workflow(
        "BadTemplate",
        '      url: "{{ state.base }}/echo"\n      headers: {X-Id: "{{ state.missing }}"}',
    ),
    """
workflow_type: ReferenceSpelling
steps:
  - name: Call
    type: HTTP
    http_config:
      method: "POST"
      url: "{{ state.base }}/flaky"
      query_params: {page: "2"}
      body: {order: "{{ state.order_id }}"}
      retry_policy: {max_attempts: 3, delay_seconds: 0.01}
    output_key: "reply"
    includes: ["status_code", "headers", "body"]
""",
    http_workflow(
        "Refused",
        '      url: "{{ state.base }}/echo"\n      retry: {max_attempts: 2, backoff_seconds: 0.01}',
    ),
)


@pytest.fixture
async def engine(sqlite_store):
    async with WorkflowEngine(sqlite_store, registry_of(*DEFINITIONS)) as eng:
        yield eng


def base(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


async def run(engine, workflow_type, data):
    return await engine.run((await engine.start_workflow(workflow_type, data)).id)


async def test_every_part_of_the_request_is_rendered_and_the_response_mapped(engine, server):
    """URL, headers, params and JSON body are rendered from state; output_key and response_mapping fill the state."""
    data = {"base": base(server), "order_id": "A17", "token": SECRET, "region": "eu"}
    wf = await run(engine, "Ship", data)
    assert wf.status == "COMPLETED"
    [req] = server.requests
    assert (req["method"], req["path"]) == ("POST", "/echo/A17")
    assert req["query"] == {"region": "eu", "fixed": "1"}
    assert req["headers"]["authorization"] == SECRET and req["headers"]["x-order"] == "A17"
    assert json.loads(req["body"]) == {"id": "A17", "lines": ["eu", 2]}
    assert wf.state.shipping["status"] == "shipped"
    assert (wf.state.ship_status, wf.state.ship_code) == ("shipped", 200)


async def test_without_output_key_the_response_goes_under_the_step_name(engine, server):
    """With neither output_key nor response_mapping the response is stored as <step>_response."""
    wf = await run(engine, "Default", {"base": base(server)})
    assert wf.status == "COMPLETED" and wf.state.Call_response["body"]["status"] == "shipped"


async def test_500_then_200_is_retried_and_succeeds(engine, server):
    """A 5xx answer is retried; the second attempt's 200 completes the step, with the attempts audited."""
    wf = await run(engine, "Flaky", {"base": base(server)})
    assert wf.status == "COMPLETED" and wf.state.r == {"hits": 2}
    assert server.hits["/flaky"] == 2
    completed = [a for a in await engine.get_audit_log(wf.id) if a.event_type == "STEP_COMPLETED"]
    assert completed[0].details["attempts"] == 2


async def test_429_waits_for_retry_after(engine, server):
    """A 429 with Retry-After: 1 is retried after about a second even though the backoff is zero."""
    started = time.monotonic()
    wf = await run(engine, "LimitedLong", {"base": base(server), "wait": 1})
    assert wf.status == "COMPLETED" and server.hits["/limited/1"] == 2
    assert time.monotonic() - started >= 0.9


async def test_retry_after_is_capped_by_max_backoff(engine, server):
    """A Retry-After of 100 s waits only max_backoff_seconds (0.3 s) before the retry."""
    started = time.monotonic()
    wf = await run(engine, "Limited", {"base": base(server), "wait": 100})
    assert wf.status == "COMPLETED"
    assert 0.25 <= time.monotonic() - started < 60  # not the 100 s asked for, on any machine


async def test_5xx_after_all_attempts_fails_without_leaking_secrets(engine, server):
    """Still 500 after 3 attempts fails the step with the status; the token appears in no error or audit row."""
    wf = await run(engine, "Down", {"base": base(server), "token": SECRET})
    assert wf.status == "FAILED"
    assert server.hits["/always500"] == 3
    assert f"GET {base(server)}/always500 answered HTTP 500" in wf.error
    audit = json.dumps([a.model_dump() for a in await engine.get_audit_log(wf.id)])
    assert "s3cr3t" not in wf.error and "s3cr3t" not in audit


async def test_unexpected_status_fails_the_step(engine, server):
    """A 404 that is not in expected_status fails the step, naming status and expectation."""
    wf = await run(engine, "NotFound", {"base": base(server)})
    assert wf.status == "FAILED" and "answered HTTP 404 (expected 200, 201, 202, 204)" in wf.error
    assert server.hits["/status/404"] == 1  # a 4xx is not retried


async def test_expected_status_may_list_other_codes(engine, server):
    """A 404 listed in expected_status completes the step."""
    wf = await run(engine, "Accepts404", {"base": base(server)})
    assert wf.status == "COMPLETED" and wf.state.r["status_code"] == 404


async def test_timeout_fails_the_step(engine, server):
    """A server slower than the timeout fails the step with a timeout message."""
    wf = await run(engine, "Slow", {"base": base(server)})
    assert (
        wf.status == "FAILED" and "timed out after 0.3 s" in wf.error
    )  # the 2 s answer never came


async def test_bad_template_fails_with_the_field_and_sends_nothing(engine, server):
    """An undefined name in a header template fails the step naming the header; no request is made."""
    wf = await run(engine, "BadTemplate", {"base": base(server)})
    assert wf.status == "FAILED"
    assert "cannot render http_config.headers.X-Id" in wf.error and "missing" in wf.error
    assert server.requests == []


async def test_connection_refused_is_retried_then_fails(engine):
    """Nothing listening: the connect error is retried, then the step fails saying it cannot connect."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wf = await run(engine, "Refused", {"base": f"http://127.0.0.1:{port}"})
    assert wf.status == "FAILED" and f"GET http://127.0.0.1:{port}/echo: cannot connect" in wf.error


async def test_the_reference_spelling_of_an_http_step_works(engine, server):
    """Step-level output_key/includes, query_params, a mapping body and retry_policy {max_attempts, delay_seconds}."""
    wf = await run(engine, "ReferenceSpelling", {"base": base(server), "order_id": "Q1"})
    assert wf.status == "COMPLETED"
    first, second = server.requests
    assert (second["method"], second["query"], json.loads(second["body"])) == (
        "POST",
        {"page": "2"},
        {"order": "Q1"},
    )
    assert first["body"] == second["body"]  # the 500 was retried with the same request
    reply = wf.state.reply
    assert (reply["status_code"], reply["body"]) == (200, {"hits": 2})
    assert reply["headers"]["content-type"] == "application/json"

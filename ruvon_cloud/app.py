"""The receiver as a plain ASGI app.

Routes: ``POST /v1/devices/{device_id}/batches`` and ``.../heartbeat``
(signed), ``GET /v1/health`` (liveness), ``GET /v1/ready`` (200 only while
the store can commit), ``GET /metrics`` (Prometheus text, unless served on
another listener or turned off).

Order of work for a signed request, cheapest refusal first: what the headers
alone can tell (401, before any body byte is read), the body within a size
bound (413) and a read deadline (408), the signature over the exact bytes
(401/403), then an in-flight slot (503 when full: slots are counted only for
authentic requests, so half-sent or forged requests cannot starve devices),
then ``ruvon_cloud.batch`` (gzip budget, record count, parse, validation),
one commit, and only then 200. A store failure anywhere -- authentication
included -- is 503 with ``Retry-After`` and one log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from ruvon_cloud import batch
from ruvon_cloud.auth import AuthError, KeyRing, precheck, verify
from ruvon_cloud.batch import HTTPError
from ruvon_cloud.console import ConsoleApp, is_console_path
from ruvon_cloud.metrics import CONTENT_TYPE, ReceiverMetrics, render
from ruvon_cloud.store import Store, StoreUnavailable
from sync_agent.protocol import (
    DEVICE_ID_PATTERN,
    H_IDEMPOTENCY,
    H_KEY_ID,
    HEALTH_PATH,
    BatchResponse,
    Heartbeat,
)

READY_PATH = "/v1/ready"
METRICS_PATH = "/metrics"
_DEVICE_ROUTE = re.compile(rf"/v1/devices/({DEVICE_ID_PATTERN})/(batches|heartbeat)")
_REJECT_CODES = (("NUL", "nul_character"), ("surrogate", "lone_surrogate"),
                 ("64-bit", "integer_too_large"), ("nested deeper", "too_deep"),
                 ("not a JSON number", "not_a_number"))  # fmt: skip
_RESULTS = {200: "stored", 400: "invalid", 401: "unauthenticated", 403: "forbidden",
            408: "body_timeout", 413: "too_large", 415: "bad_encoding", 503: "unavailable"}  # fmt: skip
log = logging.getLogger(__name__)


def _route_label(path: str) -> str:
    """A bounded label for a request path (device ids stay out of latency metrics)."""
    match = _DEVICE_ROUTE.fullmatch(path)
    if match:
        return match.group(2)
    return path.rsplit("/", 1)[-1] if path in (HEALTH_PATH, READY_PATH, METRICS_PATH) else "other"


class ReceiverApp:
    """The reference ingest endpoint; ``store`` and ``keyring`` are injected, limits are tunable."""

    def __init__(
        self,
        store: Store,
        keyring: KeyRing,
        *,
        max_body_bytes: int = 8 << 20,
        max_decoded_bytes: int = 16 << 20,
        decoded_budget_bytes: int = 64 << 20,
        max_records: int = 50_000,
        max_inflight: int = 8,
        body_timeout: float = 30.0,
        serve_metrics: bool = True,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.max_body_bytes = max_body_bytes
        self.max_decoded_bytes = max_decoded_bytes
        self.budget = batch.DecodedBudget(max(decoded_budget_bytes, max_decoded_bytes))
        self.max_records = max_records
        self.max_inflight = max_inflight
        self.body_timeout = body_timeout
        self.serve_metrics = serve_metrics
        self.metrics = ReceiverMetrics()
        self._inflight = 0
        self.console = ConsoleApp(store)

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if is_console_path(scope["path"]):
            await self.console(scope, receive, send)
            return
        started = time.perf_counter()
        route = _route_label(scope["path"])
        try:
            status, payload = await self._route(scope, receive)
        except HTTPError as exc:
            status, payload = exc.status, exc
        except StoreUnavailable as exc:
            log.error("store_unavailable", extra={"path": scope["path"], "error": str(exc)})
            status, payload = 503, HTTPError(503, "store unavailable", retry_after=5)
        if isinstance(payload, HTTPError):
            extra = (
                [(b"retry-after", str(payload.retry_after).encode())] if payload.retry_after else []
            )
            await _respond(send, status, {"error": payload.error}, extra)
        elif isinstance(payload, bytes):
            await _respond(send, status, payload, [], CONTENT_TYPE)
        else:
            await _respond(send, status, payload)
        self.metrics.latency.observe(time.perf_counter() - started, route=route)
        if route == "batches":
            self.metrics.batches.inc(result=_RESULTS.get(status, f"http_{status}"))

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.store.initialize()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: dict, receive) -> tuple[int, Any]:
        path, method = scope["path"], scope["method"]
        simple = {HEALTH_PATH: self._health, READY_PATH: self._ready}
        if self.serve_metrics:
            simple[METRICS_PATH] = self.render_metrics
        if path in simple:
            if method not in ("GET", "HEAD"):
                raise HTTPError(405, "method not allowed")
            return await simple[path]()
        match = _DEVICE_ROUTE.fullmatch(path)
        if match is None:
            raise HTTPError(404, "not found")
        if method != "POST":
            raise HTTPError(405, "method not allowed")
        device_id, kind = match.groups()
        return 200, await self._device_request(scope, receive, device_id, kind)

    async def _health(self) -> tuple[int, Any]:
        return 200, {"status": "ok"}

    async def _ready(self) -> tuple[int, Any]:
        """Ready only while a one-row commit succeeds within 5 s."""
        try:
            async with asyncio.timeout(5):
                await self.store.can_commit()
        except (StoreUnavailable, TimeoutError) as exc:
            reason = str(exc) or "store did not commit within 5 s"
            return 503, HTTPError(503, f"not ready: {reason}", retry_after=5)
        return 200, {"status": "ready"}

    async def render_metrics(self) -> tuple[int, bytes]:
        """The Prometheus exposition: this process's counters and the store's per-device gauges."""
        self.metrics.inflight.set(self._inflight)
        self.metrics.decoded.set(self.budget.in_use)
        try:
            devices: list[dict] | None = await self.store.devices()
        except StoreUnavailable:
            devices = None
        return 200, render([*self.metrics.own(), *self.metrics.devices(devices)])

    async def _device_request(self, scope: dict, receive, device_id: str, kind: str) -> dict:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        signed_path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        try:
            claim = await precheck(self.store, headers)
            raw = await self._read_body(headers, receive)
            await verify(self.store, self.keyring, claim, device_id, signed_path.split("?")[0], raw)
        except AuthError as exc:
            await self._refused(device_id, exc, headers.get(H_KEY_ID.lower(), "")[:128] or None)
            raise HTTPError(exc.status, exc.reason) from None
        if self._inflight >= self.max_inflight:
            raise HTTPError(503, "receiver busy", retry_after=1)
        self._inflight += 1
        try:
            decoded = batch.decode(
                headers.get("content-encoding", ""), raw, self.max_decoded_bytes, self.budget
            )
            try:
                if kind == "heartbeat":
                    return await self._heartbeat(device_id, decoded.body)
                return await self._batch(headers, device_id, decoded.body, len(raw))
            finally:
                decoded.release()
        finally:
            self._inflight -= 1

    async def _refused(self, device_id: str, exc: AuthError, key_id: str | None) -> None:
        """Count, log and keep a refusal; failing to keep it does not change the answer."""
        self.metrics.auth_refusals.inc(reason=exc.code)
        log.warning("request_refused", extra={"device_id": device_id, "status": exc.status,
                                              "reason": exc.reason, "key_id": key_id})  # fmt: skip
        try:
            await self.store.record_refusal(device_id, exc.status, exc.reason, key_id)
        except StoreUnavailable as err:
            log.error("refusal_not_recorded", extra={"device_id": device_id, "error": str(err)})

    async def _heartbeat(self, device_id: str, body: bytes) -> dict:
        try:
            beat = Heartbeat.model_validate_json(body)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise HTTPError(400, f"not a heartbeat: {str(exc).splitlines()[0]}") from None
        await self.store.heartbeat(device_id, beat.agent)
        self.metrics.heartbeats.inc()
        return {"status": "ok"}

    async def _batch(self, headers: dict, device_id: str, body: bytes, wire_bytes: int) -> dict:
        started = time.perf_counter()
        parsed = batch.parse(
            body,
            device_id,
            headers.get(H_IDEMPOTENCY.lower()),
            self.max_records,
            nul_ok=self.store.holds_nul,
        )
        commit_started = time.perf_counter()
        stored = await self.store.ingest(
            device_id, parsed.batch_id, parsed.workflows, parsed.audits, parsed.agent
        )
        self._count(parsed, stored, time.perf_counter() - commit_started)
        log.info(
            "batch_stored", extra={
                "device_id": device_id, "batch_id": parsed.batch_id, "workflows": stored.workflows,
                "audit_logs": stored.audit_logs, "duplicates": stored.duplicates,
                "conflicts": stored.conflicts, "rejected": len(parsed.rejected), "bytes": wire_bytes,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1)},
        )  # fmt: skip
        return BatchResponse(
            batch_id=parsed.batch_id,
            acked_workflow_ids=[w.id for w in parsed.workflows],
            acked_audit_ids=[a.audit_id for a in parsed.audits],
            rejected=parsed.rejected,
        ).model_dump()

    def _count(self, parsed: batch.Parsed, stored, commit_s: float) -> None:
        m = self.metrics
        m.commit.observe(commit_s)
        m.records_stored.inc(stored.workflows, kind="workflow")
        m.records_stored.inc(stored.audit_logs, kind="audit")
        m.records_duplicate.inc(stored.duplicates, kind="any")
        m.conflicts.inc(stored.conflicts)
        for r in parsed.rejected:
            code = next((c for text, c in _REJECT_CODES if text in r.reason), "invalid")
            m.records_rejected.inc(kind=r.kind, reason=code)

    async def _read_body(self, headers: dict[str, str], receive) -> bytes:
        declared = headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise HTTPError(413, f"body larger than {self.max_body_bytes} bytes")
        chunks, size, more = [], 0, True
        try:
            async with asyncio.timeout(self.body_timeout):
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise HTTPError(400, "client disconnected")
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise HTTPError(413, f"body larger than {self.max_body_bytes} bytes")
                    chunks.append(chunk)
                    more = message.get("more_body", False)
        except TimeoutError:
            raise HTTPError(
                408, f"request body not received within {self.body_timeout:g} s"
            ) from None
        return b"".join(chunks)


class MetricsApp:
    """``GET /metrics`` of a receiver, alone: for a listener of its own (``--metrics-listen``)."""

    def __init__(self, receiver: ReceiverApp) -> None:
        self.receiver = receiver

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != METRICS_PATH:
            await _respond(send, 404, {"error": "not found"})
            return
        _, body = await self.receiver.render_metrics()
        await _respond(send, 200, body, [], CONTENT_TYPE)


async def _respond(
    send,
    status: int,
    payload: Any,
    extra: list | None = None,
    content_type: str = "application/json",
) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})

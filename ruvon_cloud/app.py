"""The receiver as a plain ASGI app: ``POST /v1/devices/{device_id}/batches``, ``GET /v1/health``.

Order of work for a batch, cheapest refusal first: bound the body as it
arrives (413), authenticate the exact bytes received (401/403) before parsing
anything, decompress with a bound (413), validate the envelope (400) and then
every record on its own (a bad record is rejected with a reason, the rest are
stored), commit once, and only then answer 200.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ruvon_cloud.auth import AuthError, KeyRing, authenticate
from ruvon_cloud.store import Store
from sync_agent.protocol import (
    DEVICE_ID_PATTERN,
    H_IDEMPOTENCY,
    H_KEY_ID,
    HEALTH_PATH,
    AgentHealth,
    BatchResponse,
    Heartbeat,
    Rejection,
    WireAuditLog,
    WireWorkflow,
)

_DEVICE_ROUTE = re.compile(rf"/v1/devices/({DEVICE_ID_PATTERN})/(batches|heartbeat)")
log = structlog.get_logger("ruvon_cloud")


class HTTPError(Exception):
    """Answer with ``status`` and a one-line JSON ``error``."""

    def __init__(self, status: int, error: str, retry_after: int | None = None) -> None:
        self.status, self.error, self.retry_after = status, error, retry_after
        super().__init__(error)


class ReceiverApp:
    """The reference ingest endpoint; ``store`` and ``keyring`` are injected, limits are tunable."""

    def __init__(
        self,
        store: Store,
        keyring: KeyRing,
        *,
        max_body_bytes: int = 8 << 20,
        max_decoded_bytes: int = 64 << 20,
        max_records: int = 50_000,
        max_inflight: int = 8,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.max_body_bytes = max_body_bytes
        self.max_decoded_bytes = max_decoded_bytes
        self.max_records = max_records
        self.max_inflight = max_inflight
        self._inflight = 0

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, payload = await self._route(scope, receive)
            await _respond(send, status, payload)
        except HTTPError as exc:
            extra = [(b"retry-after", str(exc.retry_after).encode())] if exc.retry_after else []
            await _respond(send, exc.status, {"error": exc.error}, extra)

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
        if path == HEALTH_PATH:
            if method not in ("GET", "HEAD"):
                raise HTTPError(405, "method not allowed")
            return 200, {"status": "ok"}
        match = _DEVICE_ROUTE.fullmatch(path)
        if match is None:
            raise HTTPError(404, "not found")
        if method != "POST":
            raise HTTPError(405, "method not allowed")
        if self._inflight >= self.max_inflight:
            raise HTTPError(503, "receiver busy", retry_after=1)
        self._inflight += 1
        try:
            device_id, kind = match.groups()
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            raw = await self._read_body(headers, receive)
            await self._authenticate(scope, headers, device_id, raw)
            if kind == "heartbeat":
                return 200, await self._heartbeat(headers, device_id, raw)
            return 200, await self._batch(headers, device_id, raw)
        finally:
            self._inflight -= 1

    async def _authenticate(self, scope: dict, headers: dict, device_id: str, raw: bytes) -> None:
        """Verify the request; a refusal is answered, logged and kept in the store."""
        signed_path = (
            scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        )
        try:
            await authenticate(self.store, self.keyring, headers, device_id, signed_path, raw)
        except AuthError as exc:
            log.warning("batch_refused", device_id=device_id, status=exc.status, reason=exc.reason)
            key_id = headers.get(H_KEY_ID.lower(), "")[:128] or None
            await self.store.record_refusal(device_id, exc.status, exc.reason, key_id)
            raise HTTPError(exc.status, exc.reason) from None

    async def _heartbeat(self, headers: dict, device_id: str, raw: bytes) -> dict:
        try:
            beat = Heartbeat.model_validate_json(self._decode(headers, raw))
        except ValidationError as exc:
            raise HTTPError(400, f"not a heartbeat: {exc.errors()[0]['msg']}") from None
        await self.store.heartbeat(device_id, beat.agent)
        return {"status": "ok"}

    async def _batch(self, headers: dict, device_id: str, raw: bytes) -> dict:
        started = time.perf_counter()
        body = self._decode(headers, raw)
        batch_id, workflows, audits, rejected, agent = self._records(
            body, device_id, headers.get(H_IDEMPOTENCY.lower())
        )
        try:
            await self.store.ingest(device_id, batch_id, workflows, audits, agent)
        except Exception as exc:  # the store failed: nothing is acked, the device retries later
            log.error("batch_store_failed", device_id=device_id, batch_id=batch_id, error=str(exc))
            raise HTTPError(503, "store unavailable", retry_after=5) from None
        response = BatchResponse(
            batch_id=batch_id,
            acked_workflow_ids=[w.id for w in workflows],
            acked_audit_ids=[a.audit_id for a in audits],
            rejected=rejected,
        )
        log.info(
            "batch_stored", device_id=device_id, batch_id=batch_id, workflows=len(workflows),
            audit_logs=len(audits), rejected=len(rejected), bytes=len(raw),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )  # fmt: skip
        return response.model_dump()

    def _records(
        self, body: bytes, device_id: str, idempotency_key: str | None
    ) -> tuple[str, list[WireWorkflow], list[WireAuditLog], list[Rejection], AgentHealth | None]:
        """Parse and validate a batch: batch id, valid workflows and audit rows, rejections.

        The common case -- every record valid -- is one pass of pydantic over the
        bytes; anything else takes the record-by-record path, which names each
        bad record (the answers of the two paths are the same for a valid batch).
        """
        try:
            fast = _Batch.model_validate_json(body)
        except ValidationError:
            fast = None
        if fast is not None:
            doc: dict = {"batch_id": fast.batch_id, "device_id": fast.device_id}
        else:
            doc = self._parse(body)
        batch_id = _envelope(doc, device_id, idempotency_key)
        if fast is not None:
            items: tuple[list, list] = (fast.workflows, fast.audit_logs)
        else:
            items = (doc["workflows"], doc["audit_logs"])
        if len(items[0]) + len(items[1]) > self.max_records:
            raise HTTPError(413, f"more than {self.max_records} records in one batch")
        if fast is not None:
            return batch_id, fast.workflows, fast.audit_logs, [], fast.agent
        return batch_id, *_validate(*items), _agent(doc.get("agent"))

    async def _read_body(self, headers: dict[str, str], receive) -> bytes:
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise HTTPError(413, f"body larger than {self.max_body_bytes} bytes")
        chunks, size, more = [], 0, True
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
        return b"".join(chunks)

    def _decode(self, headers: dict[str, str], raw: bytes) -> bytes:
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return raw
        if encoding != "gzip":
            raise HTTPError(415, f"unsupported content-encoding {encoding!r}")
        inflater = zlib.decompressobj(wbits=31)
        try:
            out = inflater.decompress(raw, self.max_decoded_bytes + 1)
        except zlib.error:
            raise HTTPError(400, "body is not valid gzip") from None
        if len(out) > self.max_decoded_bytes or inflater.unconsumed_tail:
            raise HTTPError(413, f"decompressed body larger than {self.max_decoded_bytes} bytes")
        if not inflater.eof:
            raise HTTPError(400, "gzip body is truncated")
        return out

    @staticmethod
    def _parse(body: bytes) -> dict:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(400, "body is not JSON") from None
        if not isinstance(doc, dict):
            raise HTTPError(400, "body is not a JSON object")
        return doc


def _envelope(doc: dict, device_id: str, idempotency_key: str | None) -> str:
    """Check the batch envelope; return its batch id."""
    batch_id = doc.get("batch_id")
    if not isinstance(batch_id, str) or not 0 < len(batch_id) <= 128:
        raise HTTPError(400, "batch_id missing or not a string")
    if idempotency_key is not None and idempotency_key != batch_id:
        raise HTTPError(400, "Idempotency-Key does not match batch_id")
    if doc.get("device_id") != device_id:
        raise HTTPError(400, "device_id in the body does not match the path")
    for key in ("workflows", "audit_logs"):
        if not isinstance(doc.get(key, []), list):
            raise HTTPError(400, f"{key} is not a list")
        doc.setdefault(key, [])
    return batch_id


class _Batch(BaseModel):
    """A batch whose every record is valid (the fast path); envelope rules are ``_envelope``'s."""

    model_config = ConfigDict(extra="ignore")

    batch_id: Any = None
    device_id: Any = None
    workflows: list[WireWorkflow] = Field(default_factory=list)
    audit_logs: list[WireAuditLog] = Field(default_factory=list)
    agent: AgentHealth | None = None


def _agent(value: Any) -> AgentHealth | None:
    """The optional health report; one that does not validate is ignored, never the batch."""
    try:
        return None if value is None else AgentHealth.model_validate(value)
    except ValidationError:
        log.warning("agent_health_ignored")
        return None


_LISTS: dict[str, TypeAdapter[Any]] = {
    "workflow": TypeAdapter(list[WireWorkflow]),
    "audit": TypeAdapter(list[WireAuditLog]),
}


def _validate(
    items_wf: list, items_au: list
) -> tuple[list[WireWorkflow], list[WireAuditLog], list[Rejection]]:
    """Validate every record on its own; bad ones become non-retryable rejections.

    The whole list is validated in one call first (the common, all-valid case);
    only a list with an error is walked record by record to name the bad ones.
    """
    rejected: list[Rejection] = []
    ok: dict[str, list] = {"workflow": [], "audit": []}
    kind: Literal["workflow", "audit"]
    for kind, model, id_key, items in (
        ("workflow", WireWorkflow, "id", items_wf),
        ("audit", WireAuditLog, "audit_id", items_au),
    ):
        try:
            ok[kind] = _LISTS[kind].validate_python(items)
            continue
        except ValidationError:
            pass
        for item in items:
            try:
                ok[kind].append(model.model_validate(item))
            except ValidationError as exc:
                ident = item.get(id_key) if isinstance(item, dict) else None
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"]) or kind
                rejected.append(
                    Rejection(
                        kind=kind,
                        id=str(ident or "")[:256],
                        reason=f"{where}: {err['msg']}",
                        retryable=False,
                    )
                )
    return ok["workflow"], ok["audit"], rejected


async def _respond(send, status: int, payload: Any, extra: list | None = None) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})

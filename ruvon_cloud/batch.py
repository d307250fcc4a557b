"""From the bytes of an authentic request to records the store can hold.

Cheapest refusal first: gunzip within a per-request bound and a budget
shared by all requests (413 / 503), count records before parsing them (413),
parse (400 for a body that is not a JSON object, nested too deeply included),
check the envelope (400), then every record on its own. A record is rejected
-- non-retryably, with a reason, the others stored -- when it is not a valid
v1 record *or* when the store could not hold it: a NUL character where the
store has no room for one (PostgreSQL text/jsonb), a lone surrogate (not
UTF-8), a ``sync_version`` beyond a signed 64-bit integer, NaN/Infinity (not
JSON), or nesting deeper than ``MAX_DEPTH``. A store error is then a real
outage, never a record that will fail again on every retry.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from sync_agent.protocol import AgentHealth, Rejection, WireAuditLog, WireWorkflow

MAX_DEPTH = 100
"""Deepest nesting of ``state``/``details`` kept (the JSON encoders give up a little past 200)."""
MAX_INT64 = 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")
_RECORD_KEYS = (b'"sync_version"', b'"audit_id"')
_SUSPICIOUS = (b"\\u0000", b"\\ud", b"\\uD", b"NaN", b"Infinity")
"""Where NUL, a surrogate or a non-number can come from in a body the fast path parsed: a JSON
escape or token (raw control characters and invalid UTF-8 are not JSON); a superset is fine."""


class HTTPError(Exception):
    """Answer with ``status`` and a one-line JSON ``error`` (and ``Retry-After`` when set)."""

    def __init__(self, status: int, error: str, retry_after: int | None = None) -> None:
        self.status, self.error, self.retry_after = status, error, retry_after
        super().__init__(error)


class DecodedBudget:
    """Decoded body bytes all requests may hold at once: past it, a request is asked to retry."""

    def __init__(self, total: int) -> None:
        self.total, self.in_use = total, 0

    def take(self, n: int) -> None:
        if self.in_use + n > self.total:
            raise HTTPError(503, "receiver busy (decoded bytes budget)", retry_after=2)
        self.in_use += n

    def release(self, n: int) -> None:
        self.in_use -= n


@dataclass
class Decoded:
    """A request body after gzip, and what it holds of the shared budget (release it when done)."""

    body: bytes
    held: int
    budget: DecodedBudget = field(repr=False)

    def release(self) -> None:
        self.budget.release(self.held)
        self.held = 0


def decode(encoding: str, raw: bytes, limit: int, budget: DecodedBudget) -> Decoded:
    """Gunzip ``raw`` in steps, taking each step's bytes from ``budget`` (raises ``HTTPError``)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        budget.take(len(raw))
        return Decoded(raw, len(raw), budget)
    if encoding != "gzip":
        raise HTTPError(415, f"unsupported content-encoding {encoding!r}")
    inflater = zlib.decompressobj(wbits=31)
    out = Decoded(b"", 0, budget)
    parts, pending, step = [], raw, 1 << 20
    try:
        while pending or not inflater.eof:
            chunk = inflater.decompress(pending, step)
            pending = inflater.unconsumed_tail
            if out.held + len(chunk) > limit:
                raise HTTPError(413, f"decompressed body larger than {limit} bytes")
            budget.take(len(chunk))
            out.held += len(chunk)
            parts.append(chunk)
            if not chunk and not pending:
                break
    except zlib.error:
        out.release()
        raise HTTPError(400, "body is not valid gzip") from None
    except HTTPError:
        out.release()
        raise
    if not inflater.eof:
        out.release()
        raise HTTPError(400, "gzip body is truncated")
    out.body = b"".join(parts)
    return out


@dataclass
class Parsed:
    """A batch: its id, the records to store, the rejected ones, and the agent's report."""

    batch_id: str
    workflows: list[WireWorkflow]
    audits: list[WireAuditLog]
    rejected: list[Rejection]
    agent: AgentHealth | None


def parse(
    body: bytes, device_id: str, idempotency_key: str | None, max_records: int, nul_ok: bool
) -> Parsed:
    """Parse and validate a batch (raises ``HTTPError``); see the module docstring for the order.

    The common case -- every record valid -- is one pass of pydantic over the
    bytes; anything else takes the record-by-record path, which names each
    bad record (the answers of the two paths are the same for a valid batch).
    """
    if sum(body.count(k) for k in _RECORD_KEYS) > max_records:  # before any parsing
        raise HTTPError(413, f"more than {max_records} records in one batch")
    try:
        fast: _Batch | None = _Batch.model_validate_json(body)
    except ValidationError:
        fast = None
    if fast is not None:
        doc: dict = {"batch_id": fast.batch_id, "device_id": fast.device_id}
    else:
        doc = _json_object(body)
    batch_id = _envelope(doc, device_id, idempotency_key)
    rejected: list[Rejection]
    if fast is not None:
        workflows, audits, rejected = fast.workflows, fast.audit_logs, []
        agent = fast.agent
    else:
        workflows, audits, rejected = _validate(doc["workflows"], doc["audit_logs"])
        agent = _agent(doc.get("agent"))
    if len(workflows) + len(audits) + len(rejected) > max_records:
        raise HTTPError(413, f"more than {max_records} records in one batch")
    text = fast is None or any(token in body for token in _SUSPICIOUS)
    workflows = _storable(workflows, "workflow", "id", rejected, nul_ok, text)
    audits = _storable(audits, "audit", "audit_id", rejected, nul_ok, text)
    return Parsed(batch_id, workflows, audits, rejected, agent)


def _json_object(body: bytes) -> dict:
    try:
        doc = json.loads(body)
    except RecursionError:
        raise HTTPError(400, "body is nested too deeply") from None
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
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"]) or kind
                ident = item.get(id_key) if isinstance(item, dict) else None
                rejected.append(_reject(kind, ident, f"{where}: {err['msg']}"))
    return ok["workflow"], ok["audit"], rejected


def _reject(kind: Literal["workflow", "audit"], ident: Any, reason: str) -> Rejection:
    """A non-retryable rejection; id and reason made safe to send back (UTF-8, bounded)."""
    ident = "" if ident is None else str(ident)
    return Rejection(
        kind=kind,
        id=_SURROGATE.sub("\ufffd", ident)[:256],
        reason=_SURROGATE.sub("\ufffd", reason)[:500],
        retryable=False,
    )


def _storable(
    records: list,
    kind: Literal["workflow", "audit"],
    id_key: str,
    rejected: list,
    nul_ok: bool,
    text: bool,
) -> list:
    """Keep the records the store can hold; add a rejection for each other one.

    ``text=False`` (the body has no escape or token that could decode to NUL,
    a surrogate or NaN) checks only what is not text: nesting and int64.
    """
    kept = []
    for record in records:
        if kind == "workflow":
            nested, in_range = record.state, record.sync_version <= MAX_INT64
        else:
            nested, in_range = record.details, True
        if not text and in_range and _flat(nested):
            kept.append(record)  # the common case, decided without a walk
            continue
        problem = unstorable(record.__dict__, nul_ok, text)
        if problem is None:
            kept.append(record)
        else:
            rejected.append(_reject(kind, getattr(record, id_key), problem))
    return kept


def _flat(value: dict) -> bool:
    """True when no value of the dict is a container (nothing to nest)."""
    return not any(isinstance(v, dict | list) for v in value.values())


def unstorable(value: Any, nul_ok: bool, text: bool = True) -> str | None:
    """Why a store could not hold ``value`` (walked without recursion), or None.

    With ``text=False`` only containers are walked (scalars in them are not looked at).
    """
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            return f"{where or 'record'}: nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, dict):
            for k, v in item.items():
                if text or isinstance(v, dict | list) or k == "sync_version":
                    path = f"{where}.{k}" if where else str(k)
                    if text:
                        stack.append((k, depth + 1, path))
                    stack.append((v, depth + 1, path))
        elif isinstance(item, list):
            stack.extend(
                (v, depth + 1, f"{where}[{i}]")
                for i, v in enumerate(item)
                if text or isinstance(v, dict | list)
            )
        elif isinstance(item, str):
            if not nul_ok and "\x00" in item:
                return f"{where}: contains a NUL character (U+0000), which this store cannot hold"
            if _SURROGATE.search(item):
                return f"{where}: contains a lone surrogate (not valid UTF-8)"
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if where == "sync_version" and item > MAX_INT64:
                return f"{where}: {item} is beyond a signed 64-bit integer"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{where}: {item} is not a JSON number"
    return None

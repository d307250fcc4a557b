"""Sync wire protocol v1 (contract §5): the records, the response and the request signature.

Both ends import this module -- the agent to build and sign batches, the
receiver to verify and validate them -- so the two can never drift apart. It
depends on the standard library and pydantic only (the cloud may import
nothing else from the device side).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PROTOCOL_VERSION = "v1"
BATCH_PATH = "/v1/devices/{device_id}/batches"
HEARTBEAT_PATH = "/v1/devices/{device_id}/heartbeat"
HEALTH_PATH = "/v1/health"
TIMESTAMP_WINDOW_SECONDS = 300
DEVICE_ID_PATTERN = r"[A-Za-z0-9._:@-]{1,128}"
"""Device ids travel unescaped in the path, so they stay within URL-safe characters."""

H_KEY_ID = "X-Ruvon-Key-Id"
H_TIMESTAMP = "X-Ruvon-Timestamp"
H_NONCE = "X-Ruvon-Nonce"
H_SIGNATURE = "X-Ruvon-Signature"
H_IDEMPOTENCY = "Idempotency-Key"

# Kept here rather than imported from ruvon_edge.status: the receiver may not import the
# runtime. tests/sync/test_protocol.py checks the two sets are equal.
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "FAILED_ROLLED_BACK",
        "FAILED_CHILD_WORKFLOW",
        "FAILED_WORKER_CRASH",
        "CANCELLED",
    }
)

_Str = Field(min_length=1, max_length=256)


class WireWorkflow(BaseModel):
    """A finished workflow as it travels; ``(id, sync_version)`` identifies one delivery."""

    model_config = ConfigDict(extra="ignore")

    id: str = _Str
    workflow_type: str = _Str
    workflow_version: str | None = None
    status: Literal[
        "COMPLETED",
        "FAILED",
        "FAILED_ROLLED_BACK",
        "FAILED_CHILD_WORKFLOW",
        "FAILED_WORKER_CRASH",
        "CANCELLED",
    ]
    state: dict[str, Any]
    current_step: str | None = None
    parent_id: str | None = None
    idempotency_key: str | None = None
    created_at: str = _Str
    updated_at: str = _Str
    completed_at: str | None = None
    sync_version: int = Field(ge=0)


class WireAuditLog(BaseModel):
    """One audit row as it travels; ``audit_id`` is unique on its device."""

    model_config = ConfigDict(extra="ignore")

    audit_id: str = _Str
    workflow_id: str = _Str
    event_type: str = _Str
    step_name: str | None = None
    old_status: str | None = None
    new_status: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    recorded_at: str = _Str


class AgentHealth(BaseModel):
    """What an agent reports of itself (optional, v1-compatible); every field may be absent."""

    model_config = ConfigDict(extra="ignore")

    version: str | None = Field(default=None, max_length=64)
    backlog: int | None = Field(default=None, ge=0)
    oldest_pending_age_s: float | None = Field(default=None, ge=0)
    quarantined: int | None = Field(default=None, ge=0)
    last_error: str | None = Field(default=None, max_length=2000)
    clock_offset_s: float | None = None


class Heartbeat(BaseModel):
    """The body of an idle agent's signed heartbeat: its health and when it was sent."""

    model_config = ConfigDict(extra="ignore")

    agent: AgentHealth
    sent_at: str = _Str


class Rejection(BaseModel):
    """A record the receiver refused, and whether sending it again could succeed."""

    kind: Literal["workflow", "audit"]
    id: str
    reason: str
    retryable: bool = False


class BatchResponse(BaseModel):
    """The 200 answer; every field is required so that ``{}`` or a stray page acks nothing."""

    model_config = ConfigDict(extra="ignore")

    batch_id: str
    acked_workflow_ids: list[str]
    acked_audit_ids: list[str]
    rejected: list[Rejection]


def batch_path(device_id: str, prefix: str = "") -> str:
    """Return the request path for a device's batches, under the base URL's path ``prefix``."""
    return prefix.rstrip("/") + BATCH_PATH.format(device_id=device_id)


def heartbeat_path(device_id: str, prefix: str = "") -> str:
    """Return the request path for a device's heartbeat, under the base URL's path ``prefix``."""
    return prefix.rstrip("/") + HEARTBEAT_PATH.format(device_id=device_id)


def string_to_sign(timestamp: str, nonce: str, method: str, path: str, body: bytes) -> bytes:
    """Return the exact bytes the signature covers (contract §5)."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{timestamp}\n{nonce}\n{method.upper()}\n{path}\n{digest}".encode()


def sign(secret: str, timestamp: str, nonce: str, method: str, path: str, body: bytes) -> str:
    """Return the ``X-Ruvon-Signature`` header value for a request."""
    mac = hmac.new(
        secret.encode(), string_to_sign(timestamp, nonce, method, path, body), hashlib.sha256
    )
    return f"{PROTOCOL_VERSION}={mac.hexdigest()}"


def signed_headers(
    key_id: str, secret: str, path: str, body: bytes, batch_id: str, now: float | None = None
) -> dict[str, str]:
    """Return fresh auth headers (new timestamp and nonce) for one POST of ``body`` to ``path``."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16)
    return {
        H_KEY_ID: key_id,
        H_TIMESTAMP: timestamp,
        H_NONCE: nonce,
        H_SIGNATURE: sign(secret, timestamp, nonce, "POST", path, body),
        H_IDEMPOTENCY: batch_id,
    }


def verify_signature(
    secret: str, header: str, timestamp: str, nonce: str, method: str, path: str, body: bytes
) -> bool:
    """Return True when ``header`` is the right signature, compared in constant time."""
    expected = sign(secret, timestamp, nonce, method, path, body)
    return hmac.compare_digest(expected.encode(), header.encode())


def timestamp_fresh(timestamp: str, now: float | None = None) -> bool:
    """Return True when a unix-seconds ``timestamp`` lies within the ±300 s window."""
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return False
    current = time.time() if now is None else now
    return abs(current - int(timestamp)) <= TIMESTAMP_WINDOW_SECONDS

"""The receiver's tables, written once for both stores (``{json}`` is TEXT or JSONB).

Tables (all times are unix seconds, DOUBLE PRECISION):

``meta (key PK, value)``
    ``schema_version``; ``master_key_fingerprint`` (the key the store was
    initialised with); ``ready_probe`` (rewritten by ``GET /v1/ready``).
``device_keys (key_id PK, device_id, created_at, revoked_at)``
    a key id per device key; the secret is derived, never stored; a revoked
    key keeps its row (``revoked_at`` set) so ``keys`` can show it.
``nonces (key_id, nonce, ts)``
    single-use request nonces, purged once older than twice the window.
``devices (device_id PK, ...)``
    the registry, kept in the batch's own transaction: ``registered_at``,
    ``first_seen_at``, ``last_seen_at`` (any authentic batch or heartbeat),
    ``last_batch_id``, ``last_batch_at``, totals ``workflows``, ``audit_logs``
    and ``conflicts`` stored; the agent's last report ``agent_version``,
    ``backlog``, ``oldest_pending_age_s``, ``quarantined``, ``last_error``,
    ``clock_offset_s`` at ``health_at``; the last refusal
    ``last_refusal_at``, ``last_refusal_status``, ``last_refusal_reason``,
    ``last_refusal_key_id``.
``refusals (device_id, at, status, reason, key_id)``
    every refused request for a registered device (kept 30 days).
``workflows (device_id, id, sync_version) PK``
    each record as received plus ``batch_id``, ``received_at``,
    ``content_sha256`` (of the record as received) and ``conflict`` (1 when
    another copy with the same key and different content arrived).
``workflow_conflicts (device_id, id, sync_version, content_sha256) PK``
    the other copies, whole (``record``), with their ``batch_id`` and
    ``received_at``: nothing is dropped, an operator decides.
``audit_logs (device_id, audit_id) PK``
    each audit row as received plus ``batch_id`` and ``received_at``.
``operators (name PK, token_sha256, created_at)``, ``operator_sessions (session_sha256 PK, operator, expires_at)``
    who may open the console; only digests of tokens and session ids are kept.
"""

from __future__ import annotations

import hashlib
import json

from pydantic_core import to_json

from sync_agent.protocol import WireAuditLog, WireWorkflow

SCHEMA_VERSION = 3

WF_FIELDS = (
    "id", "workflow_type", "workflow_version", "status", "state", "current_step", "parent_id",
    "idempotency_key", "created_at", "updated_at", "completed_at", "sync_version",
)  # fmt: skip
AUDIT_FIELDS = (
    "audit_id", "workflow_id", "event_type", "step_name", "old_status", "new_status", "details",
    "recorded_at",
)  # fmt: skip
WF_COLS = "device_id, " + ", ".join(WF_FIELDS) + ", batch_id, received_at, content_sha256"
AUDIT_COLS = "device_id, " + ", ".join(AUDIT_FIELDS) + ", batch_id, received_at"

_V1 = [
    "CREATE TABLE IF NOT EXISTS device_keys (key_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS nonces (key_id TEXT NOT NULL, nonce TEXT NOT NULL, ts BIGINT NOT NULL, PRIMARY KEY (key_id, nonce))",
    "CREATE INDEX IF NOT EXISTS nonces_ts ON nonces (ts)",
    "CREATE TABLE IF NOT EXISTS workflows (device_id TEXT NOT NULL, id TEXT NOT NULL, sync_version BIGINT NOT NULL, "
    "workflow_type TEXT NOT NULL, workflow_version TEXT, status TEXT NOT NULL, state {json} NOT NULL, current_step TEXT, "
    "parent_id TEXT, idempotency_key TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, completed_at TEXT, "
    "batch_id TEXT NOT NULL, received_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, id, sync_version))",
    "CREATE TABLE IF NOT EXISTS audit_logs (device_id TEXT NOT NULL, audit_id TEXT NOT NULL, workflow_id TEXT NOT NULL, "
    "event_type TEXT NOT NULL, step_name TEXT, old_status TEXT, new_status TEXT, details {json} NOT NULL, "
    "recorded_at TEXT NOT NULL, batch_id TEXT NOT NULL, received_at DOUBLE PRECISION NOT NULL, "
    "PRIMARY KEY (device_id, audit_id))",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]

_V2 = [
    "ALTER TABLE device_keys ADD COLUMN revoked_at DOUBLE PRECISION",
    "CREATE INDEX IF NOT EXISTS device_keys_device ON device_keys (device_id)",
    "ALTER TABLE workflows ADD COLUMN content_sha256 TEXT",
    "ALTER TABLE workflows ADD COLUMN conflict INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX IF NOT EXISTS workflows_received ON workflows (received_at)",
    "CREATE INDEX IF NOT EXISTS workflows_device_received ON workflows (device_id, received_at)",
    "CREATE INDEX IF NOT EXISTS workflows_status_received ON workflows (status, received_at)",
    "CREATE INDEX IF NOT EXISTS workflows_type_received ON workflows (workflow_type, received_at)",
    "CREATE INDEX IF NOT EXISTS workflows_id ON workflows (id)",
    "CREATE INDEX IF NOT EXISTS workflows_idempotency ON workflows (idempotency_key)",
    "CREATE INDEX IF NOT EXISTS workflows_conflict ON workflows (conflict, received_at)",
    "CREATE INDEX IF NOT EXISTS audit_logs_workflow ON audit_logs (device_id, workflow_id)",
    "CREATE INDEX IF NOT EXISTS audit_logs_device_received ON audit_logs (device_id, received_at)",
    "CREATE TABLE IF NOT EXISTS workflow_conflicts (device_id TEXT NOT NULL, id TEXT NOT NULL, "
    "sync_version BIGINT NOT NULL, content_sha256 TEXT NOT NULL, record {json} NOT NULL, batch_id TEXT NOT NULL, "
    "received_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, id, sync_version, content_sha256))",
    "CREATE TABLE IF NOT EXISTS devices (device_id TEXT PRIMARY KEY, registered_at DOUBLE PRECISION, "
    "first_seen_at DOUBLE PRECISION, last_seen_at DOUBLE PRECISION, last_batch_id TEXT, last_batch_at DOUBLE PRECISION, "
    "workflows BIGINT NOT NULL DEFAULT 0, audit_logs BIGINT NOT NULL DEFAULT 0, conflicts BIGINT NOT NULL DEFAULT 0, "
    "agent_version TEXT, backlog BIGINT, oldest_pending_age_s DOUBLE PRECISION, quarantined BIGINT, last_error TEXT, "
    "clock_offset_s DOUBLE PRECISION, health_at DOUBLE PRECISION, last_refusal_at DOUBLE PRECISION, "
    "last_refusal_status INTEGER, last_refusal_reason TEXT, last_refusal_key_id TEXT)",
    "CREATE INDEX IF NOT EXISTS devices_last_seen ON devices (last_seen_at)",
    "CREATE TABLE IF NOT EXISTS refusals (device_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, "
    "status INTEGER NOT NULL, reason TEXT NOT NULL, key_id TEXT)",
    "CREATE INDEX IF NOT EXISTS refusals_device_at ON refusals (device_id, at)",
    "CREATE INDEX IF NOT EXISTS refusals_at ON refusals (at)",
    # a store of schema 1 gets its registry from what it already holds
    "INSERT INTO devices (device_id, registered_at) SELECT device_id, min(created_at) FROM device_keys "
    "GROUP BY device_id ON CONFLICT (device_id) DO NOTHING",
    "UPDATE devices SET workflows = (SELECT count(*) FROM workflows w WHERE w.device_id = devices.device_id), "
    "audit_logs = (SELECT count(*) FROM audit_logs a WHERE a.device_id = devices.device_id)",
]

# The operator console (ruvon_cloud.console): operators and login sessions, stored as SHA-256
# digests only, and the one index its pages need beyond the CLI's (a device's workflows by status).
_V3 = [
    "CREATE TABLE IF NOT EXISTS operators (name TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, "
    "created_at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS operator_sessions (session_sha256 TEXT PRIMARY KEY, operator TEXT NOT NULL, "
    "expires_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS operator_sessions_expiry ON operator_sessions (expires_at)",
    "CREATE INDEX IF NOT EXISTS workflows_device_status ON workflows (device_id, status)",
]

MIGRATIONS: dict[int, list[str]] = {2: _V2, 3: _V3}
"""Statements that take a store from version ``n - 1`` to ``n`` (version 1 is ``BASE``)."""
BASE = _V1


def content_sha256(w: WireWorkflow) -> str:
    """The digest that tells two deliveries of one ``(id, sync_version)`` apart (key order aside)."""
    fields = [w.id, w.workflow_type, w.workflow_version, w.status, w.state, w.current_step,
              w.parent_id, w.idempotency_key, w.created_at, w.updated_at, w.completed_at, w.sync_version]  # fmt: skip
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def workflow_row(device_id: str, w: WireWorkflow, batch_id: str, now: float, sha: str) -> tuple:
    """The ``WF_COLS`` values of one workflow (JSON encoded by pydantic-core, in Rust)."""
    return (device_id, w.id, w.workflow_type, w.workflow_version, w.status, to_json(w.state).decode(),
            w.current_step, w.parent_id, w.idempotency_key, w.created_at, w.updated_at,
            w.completed_at, w.sync_version, batch_id, now, sha)  # fmt: skip


def audit_row(device_id: str, a: WireAuditLog, batch_id: str, now: float) -> tuple:
    """The ``AUDIT_COLS`` values of one audit row."""
    return (device_id, a.audit_id, a.workflow_id, a.event_type, a.step_name, a.old_status,
            a.new_status, to_json(a.details).decode(), a.recorded_at, batch_id, now)  # fmt: skip

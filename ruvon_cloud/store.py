"""Where the receiver keeps device keys, nonces, the device registry, workflows and audit rows.

Every query is written once here, with ``?`` placeholders, against two small
adapters: ``SQLiteStore`` (``ruvon_cloud.sqlite_store``, the default) and
``PostgresStore`` (``ruvon_cloud.postgres_store``, asyncpg, for scale). The
tables are documented in ``ruvon_cloud.schema``.

A batch is one transaction: its new workflows and audit rows, the copies that
conflict with what is stored, and the device's registry row. Workflows are
keyed by ``(device, id, sync_version)`` and audit rows by ``(device,
audit_id)``, so a batch sent twice stores each record once and is acked twice;
the same key with *different* content is a conflict: both copies are kept and
the stored one is flagged. Batches of one device are serialised (a lock per
device) so that check cannot race.

The read methods (``devices``, ``workflows``, ``workflow``, ``audit_logs``,
``refusals``, ``keys``, ``activity``) serve the CLI, ``/metrics`` and the
console; each is backed by an index (see the schema).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from ruvon_cloud import schema
from sync_agent.protocol import TIMESTAMP_WINDOW_SECONDS, AgentHealth, WireAuditLog, WireWorkflow

REFUSAL_RETENTION_SECONDS = 30 * 86400
_PURGE_EVERY = 1000
_DEVICE_COLS = (
    "device_id", "registered_at", "first_seen_at", "last_seen_at", "last_batch_id", "last_batch_at",
    "workflows", "audit_logs", "conflicts", "agent_version", "backlog", "oldest_pending_age_s",
    "quarantined", "last_error", "clock_offset_s", "health_at", "last_refusal_at",
    "last_refusal_status", "last_refusal_reason", "last_refusal_key_id",
)  # fmt: skip
_HEALTH = (
    "agent_version",
    "backlog",
    "oldest_pending_age_s",
    "quarantined",
    "last_error",
    "clock_offset_s",
)
_SEEN = (
    "INSERT INTO devices (device_id, first_seen_at, last_seen_at) VALUES (?, ?, ?) "
    "ON CONFLICT (device_id) DO UPDATE SET last_seen_at = excluded.last_seen_at, "
    "first_seen_at = COALESCE(devices.first_seen_at, excluded.first_seen_at)"
)
_BATCH_SEEN = (
    "UPDATE devices SET last_batch_id = ?, last_batch_at = ?, workflows = workflows + ?, "
    "audit_logs = audit_logs + ?, conflicts = conflicts + ? WHERE device_id = ?"
)
_HEALTH_SET = (
    "UPDATE devices SET "
    + ", ".join(f"{c} = ?" for c in _HEALTH)
    + ", health_at = ? WHERE device_id = ?"
)


class Tx(Protocol):
    """One open transaction of an adapter."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; return the number of rows it changed."""

    async def executemany(self, sql: str, rows: list[tuple]) -> None:
        """Run one statement per row (an adapter may hold it back until the next read or commit)."""

    async def fetch(self, sql: str, *args: Any) -> list[tuple]:
        """Run one query; return its rows."""


class StoreUnavailable(Exception):
    """The store failed (down, locked, disk full): nothing was committed; retry later."""


def describe(exc: BaseException) -> str:
    """One line naming a store error's cause; a full disk says ENOSPC whatever the layer."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    full = getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "No space left" in text
    return f"ENOSPC: {text}" if full and not text.startswith("ENOSPC") else text


@dataclass(frozen=True)
class Stored:
    """What one batch changed: new rows, copies already held, and conflicting copies kept."""

    workflows: int
    audit_logs: int
    duplicates: int
    conflicts: int


class Store(ABC):
    """The receiver's durable state; subclasses supply connections, transactions and dialect."""

    json_type = "TEXT"
    holds_nul = True  # SQLite TEXT holds U+0000; PostgreSQL text/jsonb cannot
    floor = "CAST({} AS INTEGER)"  # of a non-negative number; PostgreSQL's CAST rounds instead
    _writes = 0

    # -- what an adapter supplies ------------------------------------------------------------
    @abstractmethod
    async def initialize(self) -> None:
        """Open the store and bring the schema up to date (safe while another process runs)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; safe to call twice."""

    @abstractmethod
    def transaction(self, lock: str | None = None) -> AbstractAsyncContextManager[Tx]:
        """A write transaction; ``lock`` serialises transactions that name the same key."""

    @abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[tuple]:
        """Run one read-only query (``?`` placeholders) outside any write transaction."""

    @abstractmethod
    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, Any]:
        """SQL testing ``column`` against a list, and its one parameter."""

    # -- schema -------------------------------------------------------------------------------
    async def migrate(self, tx: Tx) -> None:
        """Create the tables or bring them to ``schema.SCHEMA_VERSION`` (inside ``tx``)."""
        for stmt in schema.BASE:
            await tx.execute(stmt.format(json=self.json_type))
        rows = await tx.fetch("SELECT value FROM meta WHERE key = 'schema_version'")
        version = int(rows[0][0]) if rows else 1
        for target in range(version + 1, schema.SCHEMA_VERSION + 1):
            for stmt in schema.MIGRATIONS[target]:
                await tx.execute(stmt.format(json=self.json_type))
        await tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            str(schema.SCHEMA_VERSION),
        )

    async def recorded_master_key(self) -> str | None:
        """The fingerprint of the master key the store was initialised with, if any."""
        rows = await self.fetch("SELECT value FROM meta WHERE key = 'master_key_fingerprint'")
        return rows[0][0] if rows else None

    async def claim_master_key(self, fingerprint: str) -> tuple[str, bool]:
        """Record ``fingerprint`` if the store has none; return the recorded one and whether it is new."""
        async with self.transaction() as tx:
            rows = await tx.fetch("SELECT value FROM meta WHERE key = 'master_key_fingerprint'")
            if rows:
                return rows[0][0], False
            await tx.execute(
                "INSERT INTO meta (key, value) VALUES ('master_key_fingerprint', ?)", fingerprint
            )
        return fingerprint, True

    async def can_commit(self) -> None:
        """Commit a one-row write; raises whatever stops the store from committing."""
        async with self.transaction() as tx:
            await tx.execute(
                "INSERT INTO meta (key, value) VALUES ('ready_probe', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                repr(time.time()),
            )

    # -- keys and nonces ----------------------------------------------------------------------
    async def add_key(self, key_id: str, device_id: str) -> None:
        """Register a device key id (the secret is derived, never stored) and the device."""
        now = time.time()
        async with self.transaction() as tx:
            await tx.execute(
                "INSERT INTO device_keys (key_id, device_id, created_at) VALUES (?, ?, ?)",
                key_id, device_id, now,
            )  # fmt: skip
            await tx.execute(
                "INSERT INTO devices (device_id, registered_at) VALUES (?, ?) "
                "ON CONFLICT (device_id) DO NOTHING",
                device_id, now,
            )  # fmt: skip

    async def device_for_key(self, key_id: str) -> str | None:
        """Return the device an active (not revoked) key id belongs to, or None."""
        rows = await self.fetch(
            "SELECT device_id FROM device_keys WHERE key_id = ? AND revoked_at IS NULL", key_id
        )
        return rows[0][0] if rows else None

    async def revoke_key(self, key_id: str) -> bool:
        """Revoke a key from now on; False when no active key has that id."""
        async with self.transaction() as tx:
            changed = await tx.execute(
                "UPDATE device_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                time.time(), key_id,
            )  # fmt: skip
        return changed == 1

    async def keys(self, device_id: str | None = None) -> list[dict]:
        """Every key (of one device), oldest first: ``{key_id, device_id, created_at, revoked_at}``."""
        where, args = ("WHERE device_id = ?", (device_id,)) if device_id else ("", ())
        rows = await self.fetch(
            f"SELECT key_id, device_id, created_at, revoked_at FROM device_keys {where} "
            "ORDER BY device_id, created_at",
            *args,
        )
        return [
            dict(zip(("key_id", "device_id", "created_at", "revoked_at"), r, strict=True))
            for r in rows
        ]

    async def use_nonce(self, key_id: str, nonce: str, timestamp: int) -> bool:
        """Record a nonce; False when it was seen before (a replay)."""
        async with self.transaction() as tx:
            fresh = await tx.execute(
                "INSERT INTO nonces (key_id, nonce, ts) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                key_id, nonce, timestamp,
            )  # fmt: skip
            if fresh and self._due_purge():  # nonces older than the window can never be replayed
                await tx.execute(
                    "DELETE FROM nonces WHERE ts < ?",
                    int(time.time()) - 2 * TIMESTAMP_WINDOW_SECONDS,
                )
        return fresh == 1

    def _due_purge(self) -> bool:
        self._writes += 1
        return self._writes % _PURGE_EVERY == 0

    # -- what devices send --------------------------------------------------------------------
    async def ingest(
        self,
        device_id: str,
        batch_id: str,
        workflows: list[WireWorkflow],
        audits: list[WireAuditLog],
        agent: AgentHealth | None = None,
    ) -> Stored:
        """Store a batch's valid records and the device's registry row in ONE transaction."""
        now = time.time()
        digests = [(w, schema.content_sha256(w)) for w in workflows]
        async with self.transaction(lock=device_id) as tx:
            held = await self._held_digests(tx, device_id, {w.id for w in workflows})
            fresh, conflicts, duplicates = _plan(digests, held)
            held_audits = await self._held_audits(tx, device_id, [a.audit_id for a in audits])
            new_audits = list({a.audit_id: a for a in reversed(audits)}.values())
            new_audits = [a for a in reversed(new_audits) if a.audit_id not in held_audits]
            if fresh:
                await tx.executemany(
                    f"INSERT INTO workflows ({schema.WF_COLS}) VALUES ({_marks(schema.WF_COLS)})",
                    [schema.workflow_row(device_id, w, batch_id, now, sha) for w, sha in fresh],
                )
            if conflicts:
                await tx.executemany(
                    "INSERT INTO workflow_conflicts (device_id, id, sync_version, content_sha256, "
                    "record, batch_id, received_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [(device_id, w.id, w.sync_version, sha, w.model_dump_json(), batch_id, now)
                     for w, sha in conflicts],
                )  # fmt: skip
                await tx.executemany(
                    "UPDATE workflows SET conflict = 1 WHERE device_id = ? AND id = ? AND sync_version = ?",
                    [(device_id, w.id, w.sync_version) for w, _ in conflicts],
                )
            if new_audits:
                await tx.executemany(
                    f"INSERT INTO audit_logs ({schema.AUDIT_COLS}) VALUES ({_marks(schema.AUDIT_COLS)})",
                    [schema.audit_row(device_id, a, batch_id, now) for a in new_audits],
                )
            await tx.executemany(_SEEN, [(device_id, now, now)])
            await tx.executemany(
                _BATCH_SEEN,
                [(batch_id, now, len(fresh), len(new_audits), len(conflicts), device_id)],
            )
            if agent is not None:
                await tx.executemany(_HEALTH_SET, [(*_health(agent), now, device_id)])
        duplicates += len(audits) - len(new_audits)
        return Stored(len(fresh), len(new_audits), duplicates, len(conflicts))

    async def heartbeat(self, device_id: str, agent: AgentHealth) -> None:
        """Note that the device is alive and what it reports of itself."""
        now = time.time()
        async with self.transaction(lock=device_id) as tx:
            await tx.execute(_SEEN, device_id, now, now)
            await tx.execute(_HEALTH_SET, *_health(agent), now, device_id)

    async def record_refusal(
        self, device_id: str, status: int, reason: str, key_id: str | None
    ) -> None:
        """Keep a refused request of a registered device (its own small transaction)."""
        now = time.time()
        async with self.transaction() as tx:
            if not await tx.fetch("SELECT 1 FROM devices WHERE device_id = ?", device_id):
                return  # requests naming unknown devices are counted in /metrics, not stored
            await tx.execute(
                "INSERT INTO refusals (device_id, at, status, reason, key_id) VALUES (?, ?, ?, ?, ?)",
                device_id, now, status, reason, key_id,
            )  # fmt: skip
            await tx.execute(
                "UPDATE devices SET last_refusal_at = ?, last_refusal_status = ?, "
                "last_refusal_reason = ?, last_refusal_key_id = ? WHERE device_id = ?",
                now, status, reason, key_id, device_id,
            )  # fmt: skip
            if self._due_purge():
                await tx.execute(
                    "DELETE FROM refusals WHERE at < ?", now - REFUSAL_RETENTION_SECONDS
                )

    async def _held_digests(
        self, tx: Tx, device_id: str, ids: Iterable[str]
    ) -> dict[tuple[str, int], str | None]:
        ids = sorted(ids)
        if not ids:
            return {}
        test, arg = self.any_of("id", ids)
        rows = await tx.fetch(
            f"SELECT id, sync_version, content_sha256 FROM workflows WHERE device_id = ? AND {test}",
            device_id, arg,
        )  # fmt: skip
        return {(r[0], r[1]): r[2] for r in rows}

    async def _held_audits(self, tx: Tx, device_id: str, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        test, arg = self.any_of("audit_id", ids)
        rows = await tx.fetch(
            f"SELECT audit_id FROM audit_logs WHERE device_id = ? AND {test}", device_id, arg
        )
        return {r[0] for r in rows}

    # -- reads ----------------------------------------------------------------------------------
    async def counts(self, device_id: str | None = None) -> dict[str, int]:
        """Return ``{"workflows": n, "audit_logs": n}`` stored (for one device, or all)."""
        where, args = ("WHERE device_id = ?", (device_id,)) if device_id else ("", ())
        wf = await self.fetch(f"SELECT count(*) FROM workflows {where}", *args)
        au = await self.fetch(f"SELECT count(*) FROM audit_logs {where}", *args)
        return {"workflows": wf[0][0], "audit_logs": au[0][0]}

    async def devices(
        self, stale_after: float = 3600.0, device_id: str | None = None, now: float | None = None
    ) -> list[dict]:
        """The registry, by device id: every column, ``last_refusal`` (or None) and ``stale``.

        A device is stale when it has not been seen (batch or heartbeat) for
        more than ``stale_after`` seconds, or never.
        """
        now = time.time() if now is None else now
        where, args = ("WHERE device_id = ?", (device_id,)) if device_id else ("", ())
        rows = await self.fetch(
            f"SELECT {', '.join(_DEVICE_COLS)} FROM devices {where} ORDER BY device_id", *args
        )
        out = []
        for row in rows:
            d = dict(zip(_DEVICE_COLS, row, strict=True))
            refusal = {k: d.pop(f"last_refusal_{k}") for k in ("at", "status", "reason", "key_id")}
            d["last_refusal"] = refusal if refusal["at"] is not None else None
            seen = d["last_seen_at"]
            d["stale"] = seen is None or now - seen > stale_after
            out.append(d)
        return out

    async def workflows(
        self,
        *,
        device_id: str | None = None,
        status: str | Sequence[str] | None = None,
        workflow_type: str | None = None,
        since: float | None = None,
        until: float | None = None,
        workflow_id: str | None = None,
        idempotency_key: str | None = None,
        conflict: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict]:
        """Stored workflows, newest received first, each as received plus device and receipt fields.

        ``since``/``until`` bound ``received_at`` (unix seconds); ``status``
        may be a list. Each filter has an index that leads with its column.
        """
        where, args = self._workflow_filter(locals())
        rows = await self.fetch(
            f"SELECT {_WF_READ} FROM workflows {where} "
            "ORDER BY received_at DESC, device_id, id, sync_version DESC LIMIT ? OFFSET ?",
            *args, limit, offset,
        )  # fmt: skip
        return [_workflow_dict(r) for r in rows]

    async def count_workflows(self, **filters: Any) -> int:
        """How many stored workflows match the ``workflows`` filters."""
        where, args = self._workflow_filter(filters)
        return (await self.fetch(f"SELECT count(*) FROM workflows {where}", *args))[0][0]

    def _workflow_filter(self, f: dict) -> tuple[str, list]:
        clauses: list[str] = []
        args: list[Any] = []
        for key, column in (("device_id", "device_id"), ("workflow_type", "workflow_type"),
                            ("workflow_id", "id"), ("idempotency_key", "idempotency_key")):  # fmt: skip
            if f.get(key) is not None:
                clauses.append(f"{column} = ?")
                args.append(f[key])
        status = f.get("status")
        if isinstance(status, str):
            clauses.append("status = ?")
            args.append(status)
        elif status:
            test, arg = self.any_of("status", list(status))
            clauses.append(test)
            args.append(arg)
        for key, op in (("since", ">="), ("until", "<")):
            if f.get(key) is not None:
                clauses.append(f"received_at {op} ?")
                args.append(float(f[key]))
        if f.get("conflict") is not None:
            clauses.append("conflict = ?")
            args.append(int(bool(f["conflict"])))
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), args

    async def workflow(self, workflow_id: str, device_id: str | None = None) -> dict | None:
        """The latest stored version of one workflow, with ``versions`` and ``conflicts`` held."""
        found = await self.workflows(workflow_id=workflow_id, device_id=device_id, limit=1000)
        if not found:
            return None
        latest = max(found, key=lambda w: (w["sync_version"], w["received_at"]))
        same = [w for w in found if w["device_id"] == latest["device_id"]]
        latest["versions"] = sorted(
            ({"sync_version": w["sync_version"], "status": w["status"], "batch_id": w["batch_id"],
              "received_at": w["received_at"]} for w in same),
            key=lambda v: v["sync_version"],
        )  # fmt: skip
        rows = await self.fetch(
            "SELECT sync_version, content_sha256, record, batch_id, received_at FROM workflow_conflicts "
            "WHERE device_id = ? AND id = ? ORDER BY sync_version, received_at",
            latest["device_id"], workflow_id,
        )  # fmt: skip
        latest["conflicts"] = [
            {"sync_version": r[0], "content_sha256": r[1], "record": json.loads(r[2]),
             "batch_id": r[3], "received_at": r[4]}
            for r in rows
        ]  # fmt: skip
        return latest

    async def audit_logs(self, workflow_id: str, device_id: str) -> list[dict]:
        """One workflow's audit rows in the order they were recorded."""
        rows = await self.fetch(
            f"SELECT {', '.join(schema.AUDIT_FIELDS)}, received_at FROM audit_logs "
            "WHERE device_id = ? AND workflow_id = ? ORDER BY recorded_at, audit_id",
            device_id, workflow_id,
        )  # fmt: skip
        out = []
        for r in rows:
            d = dict(zip((*schema.AUDIT_FIELDS, "received_at"), r, strict=True))
            d["details"] = _json(d["details"])
            out.append(d)
        return out

    async def refusals(
        self, device_id: str | None = None, since: float | None = None, limit: int = 100
    ) -> list[dict]:
        """Refused requests of registered devices, newest first: ``{device_id, at, status, reason, key_id}``."""
        clauses: list[str] = []
        args: list[Any] = []
        if device_id is not None:
            clauses.append("device_id = ?")
            args.append(device_id)
        if since is not None:
            clauses.append("at >= ?")
            args.append(float(since))
        where = "WHERE " + " AND ".join(clauses) if clauses else ""
        rows = await self.fetch(
            f"SELECT device_id, at, status, reason, key_id FROM refusals {where} ORDER BY at DESC LIMIT ?",
            *args, limit,
        )  # fmt: skip
        return [
            dict(zip(("device_id", "at", "status", "reason", "key_id"), r, strict=True))
            for r in rows
        ]

    async def activity(self, device_id: str, since: float, bucket_s: int) -> list[dict]:
        """Workflows and audit rows received per ``bucket_s`` window since ``since``: ``{at, workflows, audit_logs}``."""
        buckets: dict[int, dict] = {}
        for table in ("workflows", "audit_logs"):
            rows = await self.fetch(
                f"SELECT {self.floor.format('(received_at - ?) / ?')} AS b, count(*) FROM {table} "
                "WHERE device_id = ? AND received_at >= ? GROUP BY b",
                float(since), float(bucket_s), device_id, float(since),
            )  # fmt: skip
            for bucket, n in rows:
                slot = buckets.setdefault(
                    int(bucket),
                    {"at": since + int(bucket) * bucket_s, "workflows": 0, "audit_logs": 0},
                )
                slot[table] = n
        return [buckets[b] for b in sorted(buckets)]


_WF_READ = "device_id, " + ", ".join(schema.WF_FIELDS) + ", batch_id, received_at, conflict"


def _workflow_dict(row: tuple) -> dict:
    d = dict(
        zip(
            ("device_id", *schema.WF_FIELDS, "batch_id", "received_at", "conflict"),
            row,
            strict=True,
        )
    )
    d["state"] = _json(d["state"])
    d["conflict"] = bool(d["conflict"])
    return d


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _marks(cols: str) -> str:
    return ", ".join("?" for _ in cols.split(","))


def _health(agent: AgentHealth) -> tuple:
    return tuple(getattr(agent, "version" if c == "agent_version" else c) for c in _HEALTH)


def _plan(
    digests: list[tuple[WireWorkflow, str]], held: dict[tuple[str, int], str | None]
) -> tuple[list, list, int]:
    """Split a batch's workflows into new rows, conflicting copies, and the number of duplicates.

    The first copy of a key wins the ``workflows`` row; any later copy (in
    this batch or a later one) with other content is a conflict. A row stored
    before digests existed (``None``) matches anything.
    """
    seen = dict(held)
    fresh, conflicts, duplicates = [], [], 0
    for w, sha in digests:
        key = (w.id, w.sync_version)
        if key not in seen:
            seen[key] = sha
            fresh.append((w, sha))
        elif seen[key] is None or seen[key] == sha:
            duplicates += 1
        else:
            conflicts.append((w, sha))
    return fresh, conflicts, duplicates


def open_store(url: str) -> Store:
    """Return the store for ``sqlite:///abs/path``, ``sqlite:rel/path`` or ``postgresql://...``."""
    if url.startswith("sqlite:"):
        from ruvon_cloud.sqlite_store import SQLiteStore

        return SQLiteStore(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        from ruvon_cloud.postgres_store import PostgresStore

        return PostgresStore(url)
    raise ValueError(
        f"unsupported store URL {url!r} (use sqlite:///ABS/PATH, sqlite:REL/PATH or postgresql://...)"
    )


def sqlite_path(url: str) -> str:
    """The file a ``sqlite:`` URL names: ``sqlite:///var/x.db`` is ``/var/x.db``, ``sqlite:x.db`` is relative."""
    rest = url.removeprefix("sqlite:")
    if rest.startswith("//"):
        rest = rest[2:]  # an empty authority: sqlite:///abs -> /abs
        if not rest.startswith("/"):
            raise ValueError(
                f"store URL {url!r} names a host; use sqlite:///ABS/PATH or sqlite:REL/PATH"
            )
        rest = "/" + rest.lstrip("/")
    if not rest:
        raise ValueError(f"store URL {url!r} names no file")
    return rest

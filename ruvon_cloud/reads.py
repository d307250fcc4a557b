"""What the CLI, ``/metrics`` and the console read from the store, written once for both stores.

Every query has an index that leads with its filter (see ``ruvon_cloud.schema``).
Times are unix seconds; JSON columns come back decoded.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from ruvon_cloud import schema


class FleetReads(ABC):
    """Read methods over an adapter's ``fetch`` and ``any_of``."""

    floor = "CAST({} AS INTEGER)"  # of a non-negative number; PostgreSQL's CAST rounds instead

    @abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[tuple]:
        """Run one read-only query (``?`` placeholders) outside any write transaction."""

    @abstractmethod
    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, Any]:
        """SQL testing ``column`` against a list, and its one parameter."""

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
            f"SELECT {', '.join(schema.DEVICE_COLS)} FROM devices {where} ORDER BY device_id", *args
        )
        out = []
        for row in rows:
            d = dict(zip(schema.DEVICE_COLS, row, strict=True))
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
        where, args = self._workflow_filter(
            {"device_id": device_id, "status": status, "workflow_type": workflow_type,
             "since": since, "until": until, "workflow_id": workflow_id,
             "idempotency_key": idempotency_key, "conflict": conflict}
        )  # fmt: skip
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

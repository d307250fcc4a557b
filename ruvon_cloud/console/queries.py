"""The console's reads over workflows and audit rows, in SQL that SQLite and PostgreSQL both run.

Each query is shaped for an index in the store's schema (see ``store.py``'s
console block) and is bounded: pages use keyset pagination on
``(created_at, device_id, id)`` (no OFFSET scans), match counts stop at
``COUNT_CAP``, and only a workflow's newest delivered ``sync_version`` is listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ruvon_cloud.store import Store

PAGE_SIZE = 50
COUNT_CAP = 1000
FAILED_STATUSES = ("FAILED", "FAILED_ROLLED_BACK", "FAILED_CHILD_WORKFLOW", "FAILED_WORKER_CRASH")
_WF_FIELDS = (
    "device_id", "id", "sync_version", "workflow_type", "workflow_version", "status", "state",
    "current_step", "parent_id", "idempotency_key", "created_at", "updated_at", "completed_at",
    "batch_id", "received_at",
)  # fmt: skip
_WF_SELECT = "SELECT " + ", ".join("w." + f for f in _WF_FIELDS) + " FROM workflows w"
_NEWEST = (
    "NOT EXISTS (SELECT 1 FROM workflows n WHERE n.device_id = w.device_id AND n.id = w.id "
    "AND n.sync_version > w.sync_version)"
)
_AUDIT_FIELDS = ("audit_id", "event_type", "step_name", "old_status", "new_status", "details", "recorded_at")


@dataclass(frozen=True)
class Search:
    """Workflow search filters (all optional, exact matches; times compare as UTC RFC 3339 text)."""

    workflow_id: str | None = None
    idempotency_key: str | None = None
    workflow_type: str | None = None
    status: str | None = None
    device_id: str | None = None
    since: str | None = None
    until: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        terms, args = [_NEWEST], []
        for column, value in (
            ("w.id", self.workflow_id), ("w.idempotency_key", self.idempotency_key),
            ("w.workflow_type", self.workflow_type), ("w.device_id", self.device_id),
        ):  # fmt: skip
            if value:
                terms.append(f"{column} = ?")
                args.append(value)
        if self.status == "FAILED*":
            terms.append("w.status LIKE 'FAILED%'")
        elif self.status:
            terms.append("w.status = ?")
            args.append(self.status)
        if self.since:
            terms.append("w.created_at >= ?")
            args.append(self.since)
        if self.until:
            terms.append("w.created_at < ?")
            args.append(self.until)
        return " AND ".join(terms), args


def _workflow(row: tuple) -> dict[str, Any]:
    return dict(zip(_WF_FIELDS, row, strict=True))


class Queries:
    """Console reads through ``Store.query``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def search(
        self, search: Search, after: tuple[str, str, str] | None = None, limit: int = PAGE_SIZE
    ) -> tuple[list[dict[str, Any]], tuple[str, str, str] | None]:
        """One page of newest-first matches, and the cursor of the next page (None at the end)."""
        where, args = search.where()
        if after is not None:
            where += " AND (w.created_at, w.device_id, w.id) < (?, ?, ?)"
            args += list(after)
        rows = await self.store.query(
            f"{_WF_SELECT} WHERE {where} ORDER BY w.created_at DESC, w.device_id DESC, w.id DESC LIMIT ?",
            (*args, limit + 1),
        )
        found = [_workflow(r) for r in rows[:limit]]
        more = len(rows) > limit
        return found, ((found[-1]["created_at"], found[-1]["device_id"], found[-1]["id"]) if more else None)

    async def count(self, search: Search) -> int:
        """How many workflows match, counted up to ``COUNT_CAP + 1`` (the page says "more than")."""
        where, args = search.where()
        rows = await self.store.query(
            f"SELECT count(*) FROM (SELECT 1 FROM workflows w WHERE {where} LIMIT ?) AS capped",
            (*args, COUNT_CAP + 1),
        )
        return rows[0][0]

    async def workflow(self, device_id: str, workflow_id: str) -> list[dict[str, Any]]:
        """Every stored delivery of one workflow, newest ``sync_version`` first."""
        rows = await self.store.query(
            f"{_WF_SELECT} WHERE w.device_id = ? AND w.id = ? ORDER BY w.sync_version DESC",
            (device_id, workflow_id),
        )
        return [_workflow(r) for r in rows]

    async def audit_trail(self, device_id: str, workflow_id: str) -> list[dict[str, Any]]:
        """A workflow's audit rows in the order the device recorded them."""
        rows = await self.store.query(
            f"SELECT {', '.join(_AUDIT_FIELDS)} FROM audit_logs WHERE device_id = ? AND workflow_id = ? "
            "ORDER BY recorded_at, audit_id",
            (device_id, workflow_id),
        )
        return [dict(zip(_AUDIT_FIELDS, r, strict=True)) for r in rows]

    async def status_counts(self, device_id: str) -> dict[str, int]:
        """A device's stored workflows per status (newest delivery of each)."""
        rows = await self.store.query(
            f"SELECT w.status, count(*) FROM workflows w WHERE w.device_id = ? AND {_NEWEST} "
            "GROUP BY w.status ORDER BY w.status",
            (device_id,),
        )
        return {status: n for status, n in rows}

    async def audit_volume(self, device_id: str) -> tuple[dict[str, int], bool]:
        """Audit rows per hour (when the device's rows span two days or less) or per day (last 60)."""
        span = await self.store.query(
            "SELECT min(recorded_at), max(recorded_at) FROM audit_logs WHERE device_id = ?", (device_id,)
        )
        first, last = span[0]
        if first is None:
            return {}, True
        hourly = first[:10] >= _days_before(last, 2)
        width, since = (13, first) if hourly else (10, max(first, _days_before(last, 60)))
        rows = await self.store.query(
            f"SELECT substr(recorded_at, 1, {width}) AS bucket, count(*) FROM audit_logs "
            "WHERE device_id = ? AND recorded_at >= ? GROUP BY bucket",
            (device_id, since),
        )
        return {bucket: n for bucket, n in rows}, hourly

    async def failed_recently(self, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
        """The newest FAILED* workflows across the fleet (a partial index keeps this cheap)."""
        rows = await self.store.query(
            f"{_WF_SELECT} WHERE w.status LIKE 'FAILED%' AND {_NEWEST} "
            "ORDER BY w.created_at DESC LIMIT ?",
            (limit,),
        )
        return [_workflow(r) for r in rows]


def _days_before(rfc3339: str, days: int) -> str:
    """The date ``days`` before an RFC 3339 text's date, as ``YYYY-MM-DD`` (for text comparisons)."""
    try:
        return (date.fromisoformat(rfc3339[:10]) - timedelta(days=days)).isoformat()
    except ValueError:
        return rfc3339[:10]

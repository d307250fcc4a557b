"""What each console page shows, read from the store: ``(template, context)`` per page.

Decisions: a device is *stale* when it has not been heard from (batch or
heartbeat) for ``STALE_AFTER`` seconds -- the CLI's ``devices`` default; it
needs *attention* when its agent reports quarantined records or an error, or
a request of it was refused in the last 24 h. Search filters are exact
matches (an id, an idempotency key, a type, a status or ``FAILED*``, a
device) plus a received-time range in UTC, newest first, ``PAGE_SIZE`` a page.
The fleet page lists stale devices first, then those needing attention, then
the healthy ones, ``DEVICES_PAGE`` a page (rendering a thousand rows at once
is what made it slow), and can show one badge only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ruvon_cloud.console import chart, queries
from ruvon_cloud.console.http import Request
from ruvon_cloud.store import Store
from sync_agent.protocol import TERMINAL_STATUSES

STALE_AFTER = 3600.0
DAY = 86400.0
PAGE_SIZE = 50
DEVICES_PAGE = 100
BADGES = ("stale", "attention", "healthy")  # the fleet page lists devices in this order
Page = tuple[str, dict[str, Any]]


class NotFound(Exception):
    """The device or workflow a URL names is not in the store."""


@dataclass(frozen=True)
class Health:
    """A device's badge: ``healthy``, ``attention`` or ``stale``, and why."""

    badge: str
    why: str


def health(device: dict, refusals_24h: int) -> Health:
    """Judge one registry row (see the module docstring)."""
    if device["stale"]:
        seen = device["last_seen_at"]
        return Health("stale", "never seen" if seen is None else "not heard from for over an hour")
    reasons = []
    if device.get("quarantined"):
        reasons.append(f"{device['quarantined']} quarantined")
    if device.get("last_error"):
        reasons.append("agent reports an error")
    if refusals_24h:
        reasons.append(f"{refusals_24h} refused in 24 h")
    return Health("attention", ", ".join(reasons)) if reasons else Health("healthy", "")


def _page_number(request: Request) -> int:
    """``?page=N`` (1 when absent or not a positive number)."""
    text = request.query.get("page", "")
    return int(text) if text.isdigit() and 0 < int(text) < 1_000_000 else 1


def _epoch(text: str | None, field: str, problems: list[str]) -> float | None:
    """``YYYY-MM-DD[THH:MM[:SS]]`` in UTC as unix seconds; a bad value is noted, not raised."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        problems.append(
            f"{field}: {text!r} is not a date or time (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)"
        )
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _seconds_between(earlier: str | None, later: str | None) -> float | None:
    try:
        a = datetime.fromisoformat((earlier or "").replace("Z", "+00:00"))
        b = datetime.fromisoformat((later or "").replace("Z", "+00:00"))
    except ValueError:
        return None
    return (b - a).total_seconds()


def timeline(audit: list[dict]) -> list[dict]:
    """Audit rows with the time since the previous one and the error they carry, if any."""
    out, previous = [], None
    for row in audit:
        details = row["details"] if isinstance(row["details"], dict) else {}
        error = details.get("error")
        out.append(
            {**row, "took_s": _seconds_between(previous, row["recorded_at"]) if previous else None,
             "error": error if error is None else str(error),
             "failed": "FAILED" in (row["event_type"] or "") or error is not None}
        )  # fmt: skip
        previous = row["recorded_at"]
    return out


class Pages:
    """The console's pages over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def fleet(self, request: Request) -> Page:
        now = time.time()
        devices = await self.store.devices(stale_after=STALE_AFTER, now=now)
        refused = await queries.refusals_since(self.store, now - DAY)
        rows = []
        for d in devices:
            judged = health(d, refused.get(d["device_id"], 0))
            rows.append({**d, "badge": judged.badge, "why": judged.why,
                         "refusals_24h": refused.get(d["device_id"], 0)})  # fmt: skip
        badges = [r["badge"] for r in rows]
        summary = {
            "devices": len(rows), "healthy": badges.count("healthy"),
            "attention": badges.count("attention"), "stale": badges.count("stale"),
            "workflows": sum(d["workflows"] for d in devices),
            "backlog": sum(d["backlog"] or 0 for d in devices),
            "quarantined": sum(d["quarantined"] or 0 for d in devices),
            "refusals_24h": sum(refused.values()),
        }  # fmt: skip
        show = request.query.get("show")
        if show in BADGES:
            rows = [r for r in rows if r["badge"] == show]
        rows.sort(key=lambda r: BADGES.index(r["badge"]))  # stable: by id within a badge
        page = _page_number(request)
        return "fleet.html", {
            "section": "fleet", "summary": summary, "show": show if show in BADGES else None,
            "devices": rows[(page - 1) * DEVICES_PAGE : page * DEVICES_PAGE], "page": page,
            "more": len(rows) > page * DEVICES_PAGE, "matching": len(rows),
            "first": (page - 1) * DEVICES_PAGE + 1,
        }  # fmt: skip

    async def device(self, request: Request, device_id: str) -> Page:
        now = time.time()
        found = await self.store.devices(stale_after=STALE_AFTER, device_id=device_id, now=now)
        if not found:
            raise NotFound(f"No device {device_id!r} is registered.")
        device = found[0]
        refusals = await self.store.refusals(device_id=device_id, limit=20)
        refused_24h = (await queries.refusals_since(self.store, now - DAY)).get(device_id, 0)
        since, bucket_s, buckets = chart.window(device["first_seen_at"], now)
        activity = await self.store.activity(device_id, since, bucket_s)
        return "device.html", {
            "section": "fleet", "device": device, "health": health(device, refused_24h),
            "status_counts": await queries.status_counts(self.store, device_id),
            "chart": chart.build(activity, since, bucket_s, buckets),
            "workflows": await self.store.workflows(device_id=device_id, limit=20),
            "refusals": refusals,
        }  # fmt: skip

    async def search(self, request: Request) -> Page:
        q = request.query
        problems: list[str] = []
        since = _epoch(q.get("since"), "since", problems)
        until = _epoch(q.get("until"), "until", problems)
        page = _page_number(request)
        status: str | tuple[str, ...] | None = q.get("status")
        if status == "FAILED*":
            status = queries.FAILED_STATUSES
        found: list[dict] = []
        if not problems:
            found = await self.store.workflows(
                workflow_id=q.get("id"), idempotency_key=q.get("key"), workflow_type=q.get("type"),
                status=status, device_id=q.get("device"), since=since, until=until,
                limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE,
            )  # fmt: skip
        keep = {k: v for k, v in q.items() if k != "page"}
        return "search.html", {
            "section": "workflows", "q": q, "problems": problems, "page": page,
            "workflows": found[:PAGE_SIZE], "more": len(found) > PAGE_SIZE, "keep": keep,
            "first": (page - 1) * PAGE_SIZE + 1, "statuses": sorted(TERMINAL_STATUSES),
        }  # fmt: skip

    async def workflow(self, request: Request, device_id: str, workflow_id: str) -> Page:
        found = await self.store.workflow(workflow_id, device_id=device_id)
        if found is None:
            raise NotFound(f"No workflow {workflow_id!r} from device {device_id!r} is stored.")
        audit = await self.store.audit_logs(workflow_id, device_id)
        return "workflow.html", {
            "section": "workflows", "wf": found, "timeline": timeline(audit),
            "took_s": _seconds_between(found["created_at"], found["completed_at"]),
        }  # fmt: skip

    async def failures(self, request: Request) -> Page:
        now = time.time()
        devices = await self.store.devices(stale_after=STALE_AFTER, now=now)
        troubled = [d for d in devices if d["quarantined"] or d["last_error"]]
        troubled.sort(key=lambda d: -(d["quarantined"] or 0))
        stale = [d for d in devices if d["stale"]]
        return "failures.html", {
            "section": "failures",
            "failed": await self.store.workflows(status=queries.FAILED_STATUSES, limit=PAGE_SIZE),
            "troubled": troubled[:PAGE_SIZE], "troubled_total": len(troubled),
            "refusals": await self.store.refusals(limit=PAGE_SIZE),
            "stale": stale[:PAGE_SIZE], "stale_total": len(stale),
        }  # fmt: skip

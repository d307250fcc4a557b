"""What each cycle leaves in the device database, for ``status``, the metrics file and the health report.

The figures live in ``edge_sync_state`` (key -> text), so they survive
restarts and read the same from any process. Failures by reason are one JSON
object under one key. Writing a figure never fails a cycle: a full disk must
not stop the drain that frees it.
"""

from __future__ import annotations

import json

import structlog

from ruvon_edge.providers.persistence import EdgeSyncStore, PersistenceError
from sync_agent.batching import utcnow
from sync_agent.report import CycleReport

log = structlog.get_logger("ruvon_sync")

LAST_ATTEMPT = "last_attempt_at"
LAST_SUCCESS = "last_success_at"
LAST_ERROR = "last_error"
LAST_ERROR_AT = "last_error_at"
SYNCED_WORKFLOWS = "synced_workflows_total"
SYNCED_AUDIT = "synced_audit_total"
FAILURES = "cycle_failures_total"  # JSON: {reason: count}
RETRIES = "retries_total"
CLOCK_OFFSET = "clock_offset_s"
KEYS = (LAST_ATTEMPT, LAST_SUCCESS, LAST_ERROR, LAST_ERROR_AT, SYNCED_WORKFLOWS, SYNCED_AUDIT,
        FAILURES, RETRIES, CLOCK_OFFSET)  # fmt: skip


class Ledger:
    """Reads and writes the agent's figures in the store."""

    def __init__(self, provider: EdgeSyncStore) -> None:
        self.provider = provider

    async def read(self) -> dict[str, str | None]:
        """Every figure, as stored (None when never written)."""
        return {k: await self.provider.get_edge_sync_state(k) for k in KEYS}

    async def note(self, key: str, value: str) -> None:
        """Write one figure; a store error is logged, never raised."""
        try:
            await self.provider.set_edge_sync_state(key, value)
        except PersistenceError as exc:
            log.warning("sync_state_not_written", key=key, error=str(exc))

    async def add(self, key: str, n: int) -> None:
        """Add ``n`` to a counter."""
        if n:
            await self.note(key, str(int(await self.provider.get_edge_sync_state(key) or 0) + n))

    async def record(self, report: CycleReport, retries: int, clock_offset: float | None) -> None:
        """Leave a cycle's outcome: success or a failure by reason, the last error, the counters."""
        now = utcnow()
        if report.ok:
            await self.note(LAST_SUCCESS, now)
        else:
            await self.count_failure(report.reason or "error")
        if report.errors or report.problems:  # a record set aside is an error to show, too
            await self.note(LAST_ERROR, (report.errors or report.problems)[-1][:500])
            await self.note(LAST_ERROR_AT, now)
        await self.add(SYNCED_WORKFLOWS, report.deleted)
        await self.add(SYNCED_AUDIT, report.audit_acked)
        await self.add(RETRIES, retries)
        await self.note_clock(clock_offset)

    async def note_clock(self, offset: float | None) -> None:
        """Keep the latest measured clock offset (seconds, device minus receiver)."""
        if offset is not None:
            await self.note(CLOCK_OFFSET, repr(offset))

    async def count_failure(self, reason: str) -> None:
        """Add one to the failures of this ``reason``."""
        failures = failures_by_reason(await self.provider.get_edge_sync_state(FAILURES))
        failures[reason] = failures.get(reason, 0) + 1
        await self.note(FAILURES, json.dumps(failures, sort_keys=True))


def failures_by_reason(stored: str | None) -> dict[str, int]:
    """The stored failure counts (an unreadable value counts as none)."""
    try:
        value = json.loads(stored or "{}")
    except ValueError:
        return {}
    return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}

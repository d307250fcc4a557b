"""The console's reads that the store's own read methods do not cover (two aggregates).

Everything else the pages show comes from ``Store.devices``, ``workflows``,
``workflow``, ``audit_logs``, ``refusals`` and ``activity``. Both queries here
run on an index (``workflows_device_status``, ``refusals_at``).
"""

from __future__ import annotations

from ruvon_cloud.store import Store

FAILED_STATUSES = ("FAILED", "FAILED_ROLLED_BACK", "FAILED_CHILD_WORKFLOW", "FAILED_WORKER_CRASH")


async def status_counts(store: Store, device_id: str) -> dict[str, int]:
    """A device's stored workflows per status."""
    rows = await store.fetch(
        "SELECT status, count(*) FROM workflows WHERE device_id = ? GROUP BY status ORDER BY status",
        device_id,
    )
    return {status: n for status, n in rows}


async def refusals_since(store: Store, since: float) -> dict[str, int]:
    """Refused requests per device since ``since`` (unix seconds)."""
    rows = await store.fetch(
        "SELECT device_id, count(*) FROM refusals WHERE at >= ? GROUP BY device_id", since
    )
    return {device_id: n for device_id, n in rows}

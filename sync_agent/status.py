"""`ruvon-sync status`: backlog, oldest pending age, last success/error, quarantine -- and as Prometheus text.

Every figure is read back from the device database, so ``status`` tells the
truth even while (or after) another agent process ran or died.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

from ruvon_edge.providers.persistence import PersistenceProvider

_STATE_KEYS = (
    "last_success_at",
    "last_attempt_at",
    "last_error",
    "last_error_at",
    "synced_workflows_total",
    "synced_audit_total",
)


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


async def collect(provider: PersistenceProvider) -> dict:
    """Return the status figures as a JSON-able dict."""
    backlog = await provider.sync_backlog()
    state = {k: await provider.get_edge_sync_state(k) for k in _STATE_KEYS}
    oldest = _epoch(backlog.get("oldest_pending_at"))
    success, failure = _epoch(state["last_success_at"]), _epoch(state["last_error_at"])
    return {
        "backlog": backlog.get("pending", 0),
        "oldest_pending_at": backlog.get("oldest_pending_at"),
        "oldest_pending_age_s": round(time.time() - oldest, 1) if oldest else None,
        "quarantined": backlog.get("quarantined", 0),
        "last_attempt_at": state["last_attempt_at"],
        "last_success_at": state["last_success_at"],
        # an error older than the last success is history, not the current state
        "last_error": state["last_error"]
        if failure and (not success or failure >= success)
        else None,
        "last_error_at": state["last_error_at"],
        "synced_workflows_total": int(state["synced_workflows_total"] or 0),
        "synced_audit_total": int(state["synced_audit_total"] or 0),
    }


def render_text(status: dict) -> str:
    """Return the status for a human, one figure per line."""
    age = status["oldest_pending_age_s"]
    lines = [
        f"backlog:            {status['backlog']} workflow(s)",
        f"oldest pending:     {status['oldest_pending_at'] or '-'}"
        + (f" ({age:.0f}s ago)" if age is not None else ""),
        f"quarantined:        {status['quarantined']}",
        f"last success:       {status['last_success_at'] or 'never'}",
        f"last error:         {status['last_error'] or '-'}"
        + (f" at {status['last_error_at']}" if status["last_error"] else ""),
        f"synced (total):     {status['synced_workflows_total']} workflow(s), {status['synced_audit_total']} audit row(s)",
    ]
    return "\n".join(lines)


def render_prometheus(status: dict) -> str:
    """Return the figures in the Prometheus text exposition format (node_exporter textfile)."""
    metrics = [
        (
            "ruvon_sync_backlog_workflows",
            "gauge",
            "Finished workflows waiting to be synced.",
            status["backlog"],
        ),
        (
            "ruvon_sync_oldest_pending_age_seconds",
            "gauge",
            "Age of the oldest pending workflow.",
            status["oldest_pending_age_s"] or 0,
        ),
        (
            "ruvon_sync_quarantined_records",
            "gauge",
            "Records the cloud rejected for good, kept locally.",
            status["quarantined"],
        ),
        (
            "ruvon_sync_last_success_timestamp_seconds",
            "gauge",
            "When a sync cycle last finished without error.",
            _epoch(status["last_success_at"]) or 0,
        ),
        (
            "ruvon_sync_last_error_timestamp_seconds",
            "gauge",
            "When a sync cycle last failed.",
            _epoch(status["last_error_at"]) or 0,
        ),
        (
            "ruvon_sync_up_to_date",
            "gauge",
            "1 when the last cycle succeeded.",
            0 if status["last_error"] else 1,
        ),
        (
            "ruvon_sync_workflows_synced_total",
            "counter",
            "Workflows delivered and deleted locally.",
            status["synced_workflows_total"],
        ),
        (
            "ruvon_sync_audit_logs_synced_total",
            "counter",
            "Audit rows delivered and deleted locally.",
            status["synced_audit_total"],
        ),
    ]
    out = []
    for name, kind, help_text, value in metrics:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {float(value):g}"]
    return "\n".join(out) + "\n"


def write_metrics(path: Path, status: dict) -> None:
    """Write the Prometheus text atomically (temp file + rename), as the textfile collector expects."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(render_prometheus(status))
    os.replace(tmp, path)

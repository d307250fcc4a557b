"""`ruvon-sync status`: backlog, oldest pending age, last success/error, quarantine -- and as Prometheus text.

Every figure is read back from the device database, so ``status`` tells the
truth even while (or after) another agent process ran or died. The metrics
file carries exact values (integers as integers, floats at full precision:
a ``%g`` timestamp is off by up to 83 minutes) and is readable by
node_exporter whatever the writer's umask.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

from ruvon_edge.providers.persistence import EdgeSyncStore
from sync_agent import ledger


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


async def collect(provider: EdgeSyncStore) -> dict:
    """Return the status figures as a JSON-able dict."""
    backlog = await provider.sync_backlog()
    state = await ledger.Ledger(provider).read()
    oldest = _epoch(backlog.get("oldest_pending_at"))
    success, failure = _epoch(state[ledger.LAST_SUCCESS]), _epoch(state[ledger.LAST_ERROR_AT])
    return {
        "backlog": backlog.get("pending", 0),
        "oldest_pending_at": backlog.get("oldest_pending_at"),
        "oldest_pending_age_s": round(time.time() - oldest, 1) if oldest else None,
        "quarantined": backlog.get("quarantined", 0),
        "last_attempt_at": state[ledger.LAST_ATTEMPT],
        "last_success_at": state[ledger.LAST_SUCCESS],
        # an error older than the last success is history, not the current state
        "last_error": state[ledger.LAST_ERROR]
        if failure and (not success or failure >= success)
        else None,
        "last_error_at": state[ledger.LAST_ERROR_AT],
        "synced_workflows_total": int(state[ledger.SYNCED_WORKFLOWS] or 0),
        "synced_audit_total": int(state[ledger.SYNCED_AUDIT] or 0),
        "cycle_failures_total": ledger.failures_by_reason(state[ledger.FAILURES]),
        "retries_total": int(state[ledger.RETRIES] or 0),
        "clock_offset_s": _number(state[ledger.CLOCK_OFFSET]),
    }


def render_text(status: dict) -> str:
    """Return the status for a human, one figure per line."""
    age = status["oldest_pending_age_s"]
    offset = status["clock_offset_s"]
    failures = ", ".join(f"{k} {v}" for k, v in sorted(status["cycle_failures_total"].items()))
    lines = [
        f"backlog:            {status['backlog']} workflow(s)",
        f"oldest pending:     {status['oldest_pending_at'] or '-'}"
        + (f" ({age:.0f}s ago)" if age is not None else ""),
        f"quarantined:        {status['quarantined']}"
        + (" (ruvon-sync quarantine list)" if status["quarantined"] else ""),
        f"last success:       {status['last_success_at'] or 'never'}",
        f"last error:         {status['last_error'] or '-'}"
        + (f" at {status['last_error_at']}" if status["last_error"] else ""),
        f"synced (total):     {status['synced_workflows_total']} workflow(s), {status['synced_audit_total']} audit row(s)",
        f"failed cycles:      {failures or '0'}; retries {status['retries_total']}",
        f"clock offset:       {'-' if offset is None else f'{offset:+g} s'}",
    ]
    return "\n".join(lines)


def _value(v: int | float) -> str:
    """Exact text for a sample: integers as integers, floats at full (round-trip) precision."""
    return str(v) if isinstance(v, int) else repr(float(v))


def render_prometheus(status: dict) -> str:
    """Return the figures in the Prometheus text exposition format (node_exporter textfile)."""
    success, failure = _epoch(status["last_success_at"]), _epoch(status["last_error_at"])
    metrics: list[tuple[str, str, str, list[tuple[str, int | float]]]] = [
        ("ruvon_sync_backlog_workflows", "gauge", "Finished workflows waiting to be synced.",
         [("", status["backlog"])]),
        ("ruvon_sync_oldest_pending_age_seconds", "gauge", "Age of the oldest pending workflow.",
         [("", status["oldest_pending_age_s"] or 0)]),
        ("ruvon_sync_quarantined_records", "gauge", "Records held back for good, kept locally.",
         [("", status["quarantined"])]),
        ("ruvon_sync_last_success_timestamp_seconds", "gauge",
         "When a sync cycle last finished without error (0: never).", [("", success or 0)]),
        ("ruvon_sync_last_error_timestamp_seconds", "gauge", "When a sync cycle last failed (0: never).",
         [("", failure or 0)]),
        ("ruvon_sync_up_to_date", "gauge", "1 when the last cycle succeeded.",
         [("", 0 if status["last_error"] else 1)]),
        ("ruvon_sync_workflows_synced_total", "counter", "Workflows delivered and deleted locally.",
         [("", status["synced_workflows_total"])]),
        ("ruvon_sync_audit_logs_synced_total", "counter", "Audit rows delivered and deleted locally.",
         [("", status["synced_audit_total"])]),
        ("ruvon_sync_cycle_failures_total", "counter", "Failed sync cycles, by reason.",
         [(f'{{reason="{k}"}}', v) for k, v in sorted(status["cycle_failures_total"].items())]),
        ("ruvon_sync_retries_total", "counter", "Failed send attempts that were tried again.",
         [("", status["retries_total"])]),
        ("ruvon_sync_clock_offset_seconds", "gauge",
         "Device clock minus the receiver's Date header (1 s resolution; absent until measured).",
         [] if status["clock_offset_s"] is None else [("", status["clock_offset_s"])]),
    ]  # fmt: skip
    out = []
    for name, kind, help_text, samples in metrics:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        out += [f"{name}{labels} {_value(v)}" for labels, v in samples]
    return "\n".join(out) + "\n"


def write_metrics(path: Path, status: dict) -> None:
    """Replace the metrics file atomically (temp file + rename), mode 0644 whatever the umask."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    with open(fd, "w", encoding="utf-8") as f:
        os.fchmod(fd, 0o644)  # the umask narrowed the mode given to open
        f.write(render_prometheus(status))
    os.replace(tmp, path)

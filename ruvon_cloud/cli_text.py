"""The human-readable output of ``ruvon-cloud`` verbs (``--json`` prints the data as it is)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def ago(at: float | None, now: float | None = None) -> str:
    """``5s ago``, ``3m ago``, ``2h ago``, ``4d ago``, or ``never``."""
    if at is None:
        return "never"
    seconds = max(0.0, (time.time() if now is None else now) - at)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def when(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def table(header: tuple[str, ...], rows: list[tuple]) -> str:
    """Columns padded to their widest cell."""
    cells = [tuple(str("-" if c is None else c) for c in row) for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def _devices(devices: list[dict]) -> str:
    if not devices:
        return "no devices (ruvon-cloud add-device DEVICE_ID registers one)"
    rows = []
    for d in devices:
        refusal = d["last_refusal"]
        refused = (
            f"{refusal['status']} {refusal['reason']} ({ago(refusal['at'])})" if refusal else None
        )
        rows.append((d["device_id"], "STALE" if d["stale"] else "ok", ago(d["last_seen_at"]),
                     d["workflows"], d["audit_logs"], d["backlog"], d["quarantined"], d["conflicts"],
                     d["agent_version"], refused))  # fmt: skip
    return table(("DEVICE", "STATE", "LAST SEEN", "WORKFLOWS", "AUDIT", "BACKLOG", "QUARANTINED",
                  "CONFLICTS", "AGENT", "LAST REFUSAL"), rows)  # fmt: skip


def _workflows(workflows: list[dict]) -> str:
    if not workflows:
        return "no workflows match"
    rows = [(w["id"], w["device_id"], w["workflow_type"], w["status"], w["sync_version"],
             when(w["received_at"]), "CONFLICT" if w["conflict"] else "") for w in workflows]  # fmt: skip
    return table(("ID", "DEVICE", "TYPE", "STATUS", "VERSION", "RECEIVED", ""), rows)


def _show(w: dict) -> str:
    lines = [f"{k}: {w[k]}" for k in ("id", "device_id", "workflow_type", "workflow_version",
                                       "status", "current_step", "parent_id", "idempotency_key",
                                       "created_at", "updated_at", "completed_at", "sync_version")]  # fmt: skip
    lines.append(f"received_at: {when(w['received_at'])} (batch {w['batch_id']})")
    lines.append("state: " + json.dumps(w["state"], ensure_ascii=False, sort_keys=True))
    lines.append("versions held: " + ", ".join(str(v["sync_version"]) for v in w["versions"]))
    for c in w["conflicts"]:
        lines.append(f"CONFLICT: version {c['sync_version']} also arrived with other content "
                     f"(batch {c['batch_id']}, {when(c['received_at'])}): "
                     + json.dumps(c["record"].get("state"), ensure_ascii=False, sort_keys=True))  # fmt: skip
    if "audit_logs" in w:
        lines.append("audit:")
        rows = [(a["recorded_at"], a["event_type"], a["step_name"],
                 f"{a['old_status'] or ''} -> {a['new_status'] or ''}",
                 json.dumps(a["details"], ensure_ascii=False) if a["details"] else "")
                for a in w["audit_logs"]]  # fmt: skip
        lines.append(table(("RECORDED", "EVENT", "STEP", "STATUS", "DETAILS"), rows))
    return "\n".join(lines)


def _keys(keys: list[dict]) -> str:
    if not keys:
        return "no keys"
    rows = [(k["key_id"], k["device_id"], when(k["created_at"]),
             "revoked " + when(k["revoked_at"]) if k["revoked_at"] else "active") for k in keys]  # fmt: skip
    return table(("KEY", "DEVICE", "CREATED", "STATE"), rows)


def _new_key(k: dict) -> str:
    return f"device_id: {k['device_id']}\nkey_id:    {k['key_id']}\nsecret:    {k['secret']}"


def _revoked(k: dict) -> str:
    return f"revoked {k['key_id']} of {k['device_id']} at {when(k['revoked_at'])}"


def _new_operator(o: dict) -> str:
    return f"operator: {o['operator']}\ntoken:    {o['token']}"


_RENDER: dict[str, Callable[[Any], str]] = {"devices": _devices, "workflows": _workflows, "show": _show, "keys": _keys,
           "add-device": _new_key, "rotate": _new_key, "revoke": _revoked,
           "add-operator": _new_operator}  # fmt: skip


def render(verb: str, result: Any) -> str:
    """The text a verb prints for ``result``."""
    return _RENDER[verb](result)

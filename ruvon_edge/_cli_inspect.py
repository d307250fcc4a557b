"""How ``ruvon-edge`` finds and shows stored workflows: ids, filters, tables, the read-only verbs.

Everything here reads the store only: no registry, no user code, so an
operator can inspect (and the CLI can print what it just did) on a device
where the workflows' modules are not importable. Rows are printed exactly as
stored; timestamps are in the one format of ``ruvon_edge.clock``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from collections.abc import Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from ruvon_edge._cli_config import Settings, UsageError
from ruvon_edge.clock import format_utc
from ruvon_edge.status import WorkflowStatus

ROW_KEYS = ("workflow_type", "workflow_version", "status", "current_step", "parent_id", "idempotency_key", "error", "version", "created_at", "updated_at", "completed_at", "state")  # fmt: skip
_AGE = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ID_TEXT = re.compile(r"[0-9a-f-]{1,36}")
_SHOWN_CANDIDATES = 3


# -- finding ----------------------------------------------------------------------------


def check_db(path: str, must_exist: bool) -> None:
    """Refuse (exit 2) a path that is a directory, missing when it must exist, or not SQLite."""
    if path == ":memory:":
        return
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"--db {path}: is a directory")
    if not p.exists():
        if must_exist:
            raise UsageError(f"--db {path}: no such database")
        if not p.parent.is_dir():
            raise UsageError(f"--db {path}: directory {p.parent} does not exist")
        return
    with p.open("rb") as fh:
        head = fh.read(16)
    if head and head != b"SQLite format 3\x00":
        raise UsageError(f"--db {path}: not a SQLite database")


@asynccontextmanager
async def open_store(settings: Settings):
    """The store opened read-only: inspecting works on a read-only file and beside a busy writer."""
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    check_db(settings.db, must_exist=True)
    async with SQLitePersistenceProvider(settings.db, read_only=True) as store:
        yield store


async def resolve_id(store: Any, text: str) -> str:
    """A full workflow id, or the one id that starts with ``text``; ambiguity is a usage error."""
    wanted = text.strip().lower()
    if not _ID_TEXT.fullmatch(wanted):
        raise UsageError(
            f"invalid workflow id {text!r} (expected a UUID or a unique prefix of one)"
        )
    if len(wanted) == 36:
        try:
            return str(UUID(wanted))
        except ValueError:
            raise UsageError(f"invalid workflow id {text!r} (expected a UUID)") from None
    found = await store.ids_with_prefix(wanted, _SHOWN_CANDIDATES + 1)
    if not found:
        raise UsageError(f"no workflow id starts with {text!r}")
    if len(found) > 1:
        shown = ", ".join(found[:_SHOWN_CANDIDATES]) + (
            ", ..." if len(found) > _SHOWN_CANDIDATES else ""
        )
        raise UsageError(
            f"workflow id prefix {text!r} is ambiguous (matches {shown}); give more of it"
        )
    return found[0]


def statuses(values: Sequence[str] | None) -> tuple[str, ...]:
    """``--status`` values (repeatable, comma-separated, ``FAILED*`` patterns) as known statuses."""
    known = [s.value for s in WorkflowStatus]
    chosen: list[str] = []
    for value in values or ():
        for item in filter(None, (v.strip().upper() for v in value.split(","))):
            matched = fnmatch.filter(known, item)
            if not matched:
                raise UsageError(f"--status {item}: unknown status (known: {', '.join(known)})")
            chosen.extend(s for s in matched if s not in chosen)
    return tuple(chosen)


def when(text: str | None, option: str) -> str | None:
    """``--since``/``--until``: an ISO date or time (UTC unless it says otherwise) or an age (``90m``)."""
    if text is None:
        return None
    age = _AGE.fullmatch(text.strip())
    if age:
        seconds = int(age.group(1)) * _SECONDS[age.group(2)]
        return format_utc(datetime.now(UTC) - timedelta(seconds=seconds))
    try:
        return format_utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: expected an ISO date or time (2026-12-01, 2026-12-01T08:30Z) "
            "or an age (45s, 30m, 12h, 7d)"
        ) from None


# -- showing ----------------------------------------------------------------------------


def emit(args: argparse.Namespace, document: Any, text: str) -> None:
    """Print one JSON document with ``--json``, else the text for humans."""
    print(json.dumps(document, default=str, indent=2) if args.json else text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns; ``-`` for None."""
    cells = [[("-" if v is None else " ".join(str(v).split())) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def row_dict(row: dict[str, Any]) -> dict[str, Any]:
    """The ``Workflow.to_dict()`` shape, from a stored row as it is stored."""
    return {"id": str(row["id"]), **{k: row.get(k) for k in ROW_KEYS}}


def describe(d: dict[str, Any]) -> str:
    """``key: value`` lines of one workflow."""
    rows = [
        ("id", d["id"]),
        ("type", f"{d['workflow_type']} {d.get('workflow_version') or ''}".strip()),
        ("status", d["status"]),
        ("current_step", d.get("current_step") or "-"),
        ("error", d.get("error") or "-"),
        ("created_at", d.get("created_at")),
        ("updated_at", d.get("updated_at")),
        ("completed_at", d.get("completed_at") or "-"),
        ("state", json.dumps(d.get("state"), default=str, sort_keys=True)),
    ]
    return "\n".join(f"{k + ':':<14}{v}" for k, v in rows)


# -- the read-only verbs ----------------------------------------------------------------


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Newest first, filtered; the text ends with how many match in all."""
    if args.limit < 1 or args.offset < 0:
        raise UsageError("--limit must be >= 1 and --offset >= 0")
    wanted, since, until = (
        statuses(args.status),
        when(args.since, "--since"),
        when(args.until, "--until"),
    )
    async with open_store(settings) as store:
        rows, total = await store.search_workflows(
            wanted, args.workflow_type, since, until, args.limit, args.offset
        )
    docs = [row_dict(r) for r in rows]
    for row, doc in zip(rows, docs, strict=True):  # listed, and named, rather than failing the list
        if row.get("unreadable"):
            doc["unreadable"] = row["unreadable"]
            print(
                f"ruvon-edge: warning: workflow {doc['id']}: {row['unreadable']}", file=sys.stderr
            )
    cells = [
        (d["id"], d["workflow_type"], d["status"], d["current_step"], d["updated_at"]) for d in docs
    ]
    if docs:
        first = args.offset + 1
        text = table(("ID", "TYPE", "STATUS", "STEP", "UPDATED"), cells)
        text += f"\n{first}-{first + len(docs) - 1} of {total} workflow(s)"
    else:
        text = f"no workflows (of {total} matching)" if total else "no workflows"
    emit(args, docs, text)
    return 0


async def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    """One workflow; with ``--audit`` its trail with each row's error and step duration."""
    async with open_store(settings) as store:
        wid = await resolve_id(store, args.id)
        doc = row_dict(await store.load_workflow(wid))
        audit = [a.model_dump() for a in await store.get_audit_logs(wid)] if args.audit else None
    text = describe(doc)
    if audit is not None:
        doc["audit"] = audit
        rows = [
            (a["recorded_at"], a["event_type"], a["step_name"], _arrow(a),
             (a.get("details") or {}).get("duration_ms"), (a.get("details") or {}).get("error"))
            for a in audit
        ]  # fmt: skip
        text += "\n\n" + table(
            ("RECORDED_AT", "EVENT", "STEP", "STATUS", "DURATION_MS", "ERROR"), rows
        )
    emit(args, doc, text)
    return 0


def _arrow(a: dict[str, Any]) -> str:
    old, new = a.get("old_status"), a.get("new_status")
    return f"{old or '-'} -> {new}" if new and new != old else (new or "-")

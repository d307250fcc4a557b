"""Builders for the workflow dicts and transitions the shared suites write."""

from __future__ import annotations

import uuid
from typing import Any

from ruvon_edge.providers.persistence import Transition


def workflow(status: str = "ACTIVE", **fields: Any) -> dict[str, Any]:
    """A minimal valid workflow dict with a fresh id."""
    return {
        "id": str(uuid.uuid4()),
        "workflow_type": "Order",
        "workflow_version": "1.0",
        "status": status,
        "state": {"order_id": "A1", "amount": 80},
        "current_step": "Reserve",
        **fields,
    }


def step(
    wf: dict[str, Any], version: int | None, status: str | None = None, **kw: Any
) -> Transition:
    """A transition of ``wf`` (at row ``version``; None creates it) with one audit row."""
    new = {**wf, **({"status": status} if status else {})}
    old = wf["status"] if version is not None else None
    audit = kw.pop("audit", [{"event_type": "STEP_EXECUTED", "step_name": new["current_step"],
                              "old_status": old, "new_status": new["status"], "details": {"n": version}}])  # fmt: skip
    return Transition(workflow=new, expected_version=version, audit=audit, **kw)


async def create(store, status: str = "ACTIVE", **fields: Any) -> dict[str, Any]:
    """Create a workflow through ``commit`` and return its dict (with ``version``)."""
    wf = workflow(status, **fields)
    [version] = await store.commit([step(wf, None)])
    return {**wf, "version": version}


async def finish(store, wf: dict[str, Any], status: str = "COMPLETED") -> dict[str, Any]:
    """Move ``wf`` to a terminal status; return the new dict (with ``version``)."""
    [version] = await store.commit([step(wf, wf["version"], status)])
    return {**wf, "status": status, "version": version}

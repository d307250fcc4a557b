"""AUDIT_EMIT steps: write one named record to the workflow's audit trail.

The record (``audit_config.event_type`` as the event type) commits in the
same transaction as the step, so it exists exactly when the step completed.
Its details hold ``severity``, the rendered ``payload``, ``retention_days``
and ``tags``; the payload values named in ``pii_fields`` are stored as their
SHA-256 hex digest, never in clear. The state is not changed.
"""

from __future__ import annotations

import hashlib
import json

from ruvon_edge.engine import audit
from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.engine.templating import render_structure, template_context
from ruvon_edge.errors import StepFailedError


async def run_audit_emit_step(run: StepRun) -> Outcome:
    """Render the payload, hash its PII fields and hand the record to the step's commit."""
    config = run.step.audit_config
    if config is None:
        raise StepFailedError("an AUDIT_EMIT step needs audit_config")
    payload = render_structure(
        run.engine.template_engine, config.payload, template_context(run), "audit_config.payload"
    )
    for field in config.pii_fields:
        if field in payload:
            text = json.dumps(payload[field], sort_keys=True, default=str)
            payload[field] = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    status = run.row["status"]
    record = audit.event(
        config.event_type,
        run.step.name,
        status,
        status,
        severity=config.severity,
        payload=payload,
        retention_days=config.retention_days,
        tags=list(config.tags),
    )
    return Outcome(events=[record], details={"audit_event_type": config.event_type})

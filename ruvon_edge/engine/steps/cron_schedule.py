"""CRON_SCHEDULE steps: register a named schedule that ``ruvon-edge serve`` runs.

``schedule_name`` and ``initial_data`` (the reference's ``initial_data_template``)
are rendered against the state; the schedule starts ``workflow_type`` (its
``target_workflow_type``) with that data at every ``cron_expression`` slot,
exactly once per slot, until it is replaced under the same name. The target
type must be registered now. Registration is stored before the step's commit
and is idempotent, so a crash in between re-registers the same schedule.
"""

from __future__ import annotations

from ruvon_edge import schedule
from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.engine.templating import render_structure, template_context


async def run_cron_schedule_step(run: StepRun) -> Outcome:
    """Render the name and data, check the target type, store the schedule."""
    step = run.step
    engine, context = run.engine.template_engine, template_context(run)
    name = render_structure(
        engine,
        step.schedule_name or f"{run.row['workflow_type']}.{step.name}",
        context,
        "schedule_name",
    )
    data = render_structure(engine, step.initial_data, context, "initial_data")
    target = step.workflow_type or ""
    run.engine.registry.get(target)  # an unknown target fails the step now, not at the slot
    await schedule.register(run.engine.persistence, name, step.cron_expression or "", target, data)
    record = {
        "schedule_name": name,
        "cron_expression": step.cron_expression,
        "workflow_type": target,
    }
    return Outcome(details={"schedule": record})

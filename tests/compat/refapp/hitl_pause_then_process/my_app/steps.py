"""Written for the corpus (the guide shows only the YAML of the legacy pattern)."""

from ruvon_edge.models import StepContext, WorkflowPauseDirective


def pause_step(state, context: StepContext) -> dict:
    state.status = "awaiting_approval"
    raise WorkflowPauseDirective(result={"status": "awaiting_approval"})


def process_step(state, context: StepContext, **user_input) -> dict:
    approval = context.validated_input
    return {"approved": approval.approved, "reviewer": approval.reviewer, "status": "processed"}

"""Written for the corpus: the reference page shows only the YAML."""

from ruvon_edge.models import StepContext


def validate_order(state, context: StepContext) -> dict:
    return {"valid": state.amount > 0}

"""Written for the corpus: the page shows only the YAML (no state model: a plain dict state)."""


def validate_order(state, context):
    return {"validated": state.amount > 0}


def high_value_review(state, context):
    return {"reviewed": True}


def process_payment(state, context):
    return {"paid": state.validated}

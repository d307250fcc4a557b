"""Written for the corpus."""


def evaluate(state, context):
    return {"risk_level": "high" if state.amount > 1000 else "low"}

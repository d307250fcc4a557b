"""Written for the corpus: the spawned workflow's one step."""


def deliver(state, context):
    return {"delivered": "@" in state.recipient}

"""Written for the corpus."""


def request_review(state, context, **user_input):
    return {"reviewed_by": user_input["reviewer"]}

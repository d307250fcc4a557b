"""Written for the corpus: the scheduled GenerateReport workflow's one step."""


def generate(state, context):
    return {"report": f"{state['report_type']} for {state['user_id']}"}

from ruvon_edge.models import StepContext, WorkflowJumpDirective
from refapp.hitl_approval_routing.my_app.state_models import OrderState

def process_approval_with_routing(state: OrderState, context: StepContext, **user_input) -> dict:
    approved = user_input.get("approved", False)
    state.approved = approved

    if not approved:
        state.rejection_reason = user_input.get("rejection_reason")
        raise WorkflowJumpDirective("Send_Rejection_Email")

    state.approved_by = user_input.get("reviewer")
    return {"decision_processed": True, "approved": approved}


# Written for the corpus (the guide shows only their YAML):
def process_order(state: OrderState, context: StepContext) -> dict:
    return {"processed": True}


def send_rejection(state: OrderState, context: StepContext) -> dict:
    if state.approved:  # the steps run in order: an approved order passes through here too
        return {}
    return {"rejection_sent": True}

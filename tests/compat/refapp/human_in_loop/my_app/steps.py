from ruvon_edge.models import StepContext, WorkflowJumpDirective
from refapp.human_in_loop.my_app.state_models import OrderState

# Works for decisions (approval/rejection routing):
def process_approval(state: OrderState, context: StepContext, **user_input) -> dict:
    if not user_input.get("approved"):
        raise WorkflowJumpDirective("Send_Rejection_Email")
    return {"approved_by": user_input["reviewer"]}

# Works for pure data collection (no routing needed):
def collect_customer_info(state: OrderState, context: StepContext, **user_input) -> dict:
    return {"customer_name": user_input["name"], "email": user_input["email"]}


# Written for the corpus (the how-to shows only their YAML):
def validate_order(state: OrderState, context: StepContext) -> dict:
    return {"validated": True}


def process_order(state: OrderState, context: StepContext) -> dict:
    return {"processed": True}

from ruvon_edge.models import StepContext
from refapp.decision_steps.my_app.state_models import OrderState

def check_order_amount(state: OrderState, context: StepContext) -> dict:
    """Check order amount and set routing metadata."""

    # Decision function just returns metadata
    # Routing is handled by YAML conditions
    return {
        "amount_checked": True,
    }


# Written for the corpus (the how-to shows only their YAML):
def await_approval(state: OrderState, context: StepContext, **user_input) -> dict:
    return {"approved_by": user_input.get("reviewer")}


def auto_process(state: OrderState, context: StepContext) -> dict:
    return {"processed": True}

"""The tutorial's steps with its failure variant of create_shipment."""

from refapp.saga_payment.payment_processor.steps import *  # noqa: F403 -- the same steps
from refapp.saga_payment.payment_processor.models import PaymentState
from ruvon_edge.models import StepContext


def create_shipment(state: PaymentState, context: StepContext, **kwargs) -> dict:
    """
    Create shipment with carrier
    """
    print(f"\n📮 Creating shipment for order {state.order_reference}")

    # SIMULATE FAILURE
    raise Exception("Carrier API unavailable")

    # ... rest of function

"""Written for the corpus: states of the caller and of the spawned EmailDelivery workflow."""

from pydantic import BaseModel


class OrderState(BaseModel):
    order_id: str
    customer_email: str
    spawned_workflows: list[dict] = []


class EmailState(BaseModel):
    recipient: str
    subject: str
    order_id: str
    delivered: bool = False

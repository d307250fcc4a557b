"""Written for the corpus: the how-to shows the steps but not this model."""

from pydantic import BaseModel


class OrderState(BaseModel):
    order_id: str
    amount: float
    amount_checked: bool = False
    approved_by: str | None = None
    processed: bool = False

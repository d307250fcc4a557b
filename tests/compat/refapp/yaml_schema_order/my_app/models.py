"""Written for the corpus: the reference page shows only the YAML."""

from pydantic import BaseModel


class OrderState(BaseModel):
    order_id: str
    amount: float
    valid: bool | None = None

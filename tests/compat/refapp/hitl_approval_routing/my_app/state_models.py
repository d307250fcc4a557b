"""Written for the corpus."""

from pydantic import BaseModel


class OrderState(BaseModel):
    order_id: str
    approved: bool | None = None
    approved_by: str | None = None
    rejection_reason: str | None = None
    decision_processed: bool = False
    processed: bool = False
    rejection_sent: bool = False

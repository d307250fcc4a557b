"""Written for the corpus."""

from pydantic import BaseModel


class OrderState(BaseModel):
    order_id: str
    status: str = "new"
    approved: bool | None = None
    reviewer: str | None = None

"""State and input models for registry tests."""

from pydantic import BaseModel


class OrderState(BaseModel):
    """State of the order workflow."""

    order_id: str = ""
    amount: float = 0


class ReviewInput(BaseModel):
    """Human review input."""

    approved: bool


class NotAModel:
    """A plain class, refused where a model is expected."""

"""Written for the corpus: the state the three service checks fill (deep-merged)."""

from pydantic import BaseModel


class ShippingState(BaseModel):
    sku: str
    address: str
    checks: dict = {}

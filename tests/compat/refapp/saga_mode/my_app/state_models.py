# State model
from pydantic import BaseModel
from typing import Optional

class OrderState(BaseModel):
    order_id: str
    customer_id: str
    items: list
    amount: float

    # Populated during execution
    inventory_reserved: bool = False
    reservation_id: Optional[str] = None
    transaction_id: Optional[str] = None
    shipping_id: Optional[str] = None


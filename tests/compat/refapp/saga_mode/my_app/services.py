"""The services the how-to's steps call (written for the corpus): in-memory, with a switch to make shipping fail."""

from __future__ import annotations

import itertools


class _Service:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.counter = itertools.count(1)
        self.fail_with: str | None = None
        self.calls: list[tuple[str, object]] = []

    def _new_id(self, op: str, arg: object) -> str:
        self.calls.append((op, arg))
        if self.fail_with and op in ("ship", "charge", "reserve"):
            raise RuntimeError(self.fail_with)
        return f"{self.prefix}-{next(self.counter)}"


class InventoryService(_Service):
    def reserve(self, items):
        return self._new_id("reserve", items)

    def release(self, reservation_id):
        self.calls.append(("release", reservation_id))


class PaymentService(_Service):
    def charge(self, customer_id, amount):
        return self._new_id("charge", (customer_id, amount))

    def refund(self, transaction_id):
        self.calls.append(("refund", transaction_id))
        return f"REF-{transaction_id}"


class ShippingService(_Service):
    def ship(self, order_id, items):
        return self._new_id("ship", order_id)

    def cancel(self, shipping_id):
        self.calls.append(("cancel", shipping_id))


inventory_service = InventoryService("RES")
payment_service = PaymentService("TXN")
shipping_service = ShippingService("SHIP")

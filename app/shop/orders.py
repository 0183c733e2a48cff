"""Orders made from a cart, and a pretend card payment that places or declines them."""

from __future__ import annotations

import dataclasses
import secrets
import threading
from dataclasses import dataclass
from enum import StrEnum

from app.shop.catalogue import CURRENCY
from app.shop.sessions import CartLine

# Stripe's test card numbers, so that a demo user knows what to type.
DECLINED_CARD = "4000000000000002"
ACCEPTED_CARD = "4242424242424242"


class OrderStatus(StrEnum):
    PENDING = "pending"
    PLACED = "placed"
    DECLINED = "declined"


class PaymentDeclined(Exception):
    """The card was refused; the order is recorded as declined."""


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    email: str = dataclasses.field(repr=False)
    phone: str | None = dataclasses.field(repr=False)
    customer_id: str | None
    lines: tuple[CartLine, ...]
    status: OrderStatus = OrderStatus.PENDING
    currency: str = CURRENCY

    @property
    def total_cents(self) -> int:
        return sum(line.total_cents for line in self.lines)

    @property
    def total(self) -> float:
        return self.total_cents / 100

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)


def card_accepted(card_number: str) -> bool:
    """The pretend payment provider: every card but Stripe's 'declined' test card is charged."""
    return "".join(card_number.split()) != DECLINED_CARD


class Orders:
    def __init__(self) -> None:
        self._orders: dict[str, Order] = {}
        self._lock = threading.Lock()

    def create(
        self, lines: list[CartLine], *, email: str, phone: str | None, customer_id: str | None
    ) -> Order:
        if not lines:
            raise ValueError("the cart is empty")
        order = Order(f"o-{secrets.token_hex(6)}", email, phone, customer_id, tuple(lines))
        return self._save(order)

    def charge(self, order: Order, card_number: str) -> Order:
        """The placed order; raises PaymentDeclined (the order is then recorded as declined)."""
        if order.status is not OrderStatus.PENDING:
            raise ValueError(f"order {order.id} is {order.status}, not pending")
        if not card_accepted(card_number):
            self._save(dataclasses.replace(order, status=OrderStatus.DECLINED))
            raise PaymentDeclined(f"card declined for order {order.id}")
        return self._save(dataclasses.replace(order, status=OrderStatus.PLACED))

    def get(self, order_id: str) -> Order | None:
        with self._lock:
            return self._orders.get(order_id)

    def _save(self, order: Order) -> Order:
        with self._lock:
            self._orders[order.id] = order
        return order

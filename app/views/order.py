"""The order page (the spec's ``Adv_order``): the cart, the customer's details and the card,
sent to the checkout API. Showing it with a full cart starts a checkout: Meta InitiateCheckout."""

from __future__ import annotations

from collections.abc import Sequence

from pyramid.response import Response
from pyramid.view import view_config

from app.services import MetaContent, MetaCustomData, MetaEventName
from app.shop.catalogue import CURRENCY
from app.shop.orders import ACCEPTED_CARD, DECLINED_CARD
from app.shop.sessions import CartLine
from app.views.front import CRITICAL, FrontController
from app.views.layout import api_form, escape, euros


def checkout_data(lines: Sequence[CartLine], order_id: str | None = None) -> MetaCustomData:
    """Meta's custom data for a cart on its way to becoming an order (``order_id``: it has).
    ``num_items`` only for InitiateCheckout (no order yet): Meta documents it for that event
    only; a Purchase's items are in ``contents``."""
    return MetaCustomData(
        value=sum(line.total_cents for line in lines) / 100,
        currency=CURRENCY,
        contents=tuple(MetaContent(line.product.id, line.quantity, line.product.price) for line in lines),
        num_items=sum(line.quantity for line in lines) if order_id is None else None,
        order_id=order_id,
    )


class OrderController(FrontController):
    @view_config(route_name="order", request_method="GET")
    def show(self) -> Response:
        lines = self.session.cart
        if not lines:
            empty = '<p>Your cart is empty: <a href="/products">see the products</a>.</p>'
            return self.page("Your order", empty)
        self.meta_event(MetaEventName.INITIATE_CHECKOUT, checkout_data(lines), priority=CRITICAL)
        rows = "".join(
            f"<tr><td>{escape(line.product.name)}</td><td>{line.quantity}</td>"
            f"<td>{euros(line.total_cents)}</td><td>"
            + api_form(f"/api/cart/items/{escape(line.product.id)}", "Remove", method="DELETE")
            + "</td></tr>"
            for line in lines
        )
        total = sum(line.total_cents for line in lines)
        customer = self.customer
        contact = (
            f"<p>Signed in as {escape(customer.email)}.</p>"
            if customer is not None
            else '<p><input name="email" type="email" required placeholder="E-mail" aria-label="E-mail"> '
            '<input name="phone" placeholder="Phone (optional)" aria-label="Phone"></p>'
        )
        form = api_form(
            "/api/checkout",
            "Pay and place the order",
            contact
            + f'<p><input name="card" value="{ACCEPTED_CARD}" aria-label="Card number"> '
            f"(test cards: {ACCEPTED_CARD} is charged, {DECLINED_CARD} is declined)</p>",
        )
        body = (
            f"<table><tr><th>Product</th><th>Quantity</th><th>Total</th><th></th></tr>{rows}</table>"
            f"<p>Total: {euros(total)}</p>{form}"
        )
        return self.page("Your order", body)

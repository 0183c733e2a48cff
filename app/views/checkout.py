"""The checkout API (the spec's ``Adv_checkout``): places the order from the cart and defers
Meta Purchase, Manago purchase and Advisable AI purchase (all critical) and a Matomo ecommerce
order. It shows every ``defer()`` option on real integrations:

- the purchase events are deferred as soon as the order exists, before the card is charged; a
  declined card answers 402 and the hook discards them (a failed request must not report a
  purchase), so no ``if`` is needed;
- ``matomo.flush`` is ``unique``: deferred again after each tracking step, only the last runs;
  for a declined card it is deferred with ``always=True``, so analytics still see the attempt;
- ``forget``: emptying the cart tells Advisable AI of each removal (the cart API's behaviour);
  products that were bought were not removed, so those signals are forgotten.

Body: ``{"email": ..., "phone": ..., "card": ...}`` (email and phone come from the account
when signed in); card 4000000000000002 is declined. A placed order's answer has
``meta_event_id``, the Purchase's ``event_id`` (the order id), for the pixel's ``eventID``.
"""

from __future__ import annotations

from pyramid.view import view_config
from pyramid_deferred.durable import durable

from app.durable_tasks import manago_purchase, manago_purchase_to_json
from app.services import ManagoPurchase, MatomoItem, MetaEventName, SignalType
from app.shop.customers import normalise_email, normalise_phone
from app.shop.orders import ACCEPTED_CARD, Order, PaymentDeclined
from app.views.cart import CartController
from app.views.front import CRITICAL, ApiError
from app.views.order import checkout_data

PAYMENT_REQUIRED = 402


class CheckoutController(CartController):
    @view_config(route_name="checkout", request_method="POST", renderer="json")
    def place_order(self) -> dict[str, object]:
        body = self.json_body()
        lines = self.session.cart
        if not lines:
            raise ApiError(409, "the cart is empty")
        customer = self.customer
        try:
            email = customer.email if customer else normalise_email(str(body.get("email", "")))
            phone = customer.phone if customer else normalise_phone(str(body.get("phone") or ""))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        order = self.shop.orders.create(
            lines, email=email, phone=phone, customer_id=customer.id if customer else None
        )
        self.track_event("checkout", "payment", name=order.id, value=order.total)
        event_id = self.defer_purchase(order)
        try:
            order = self.shop.orders.charge(order, str(body.get("card") or ACCEPTED_CARD))
        except PaymentDeclined:
            self.tracker.track_event("checkout", "payment_declined", name=order.id, value=order.total)
            self.defer_matomo_flush(always=True)
            self.request.response.status_int = PAYMENT_REQUIRED
            return {"order": order.id, "status": "declined"}
        self.tracker.track_ecommerce_order(
            order.id,
            order.total,
            [
                MatomoItem(line.product.id, line.product.name, line.product.price, line.quantity,
                           line.product.category)
                for line in order.lines
            ],
        )
        self.defer_matomo_flush()
        self.empty_cart()
        self.runner.forget("advisable_ai.remove_from_cart")
        return {
            "order": order.id,
            "status": "placed",
            "total": order.total,
            "currency": order.currency,
            "meta_event_id": event_id,
        }

    def defer_purchase(self, order: Order) -> str:
        """The purchase events; returns the Meta Purchase's ``event_id``: the order id, as Meta
        suggests, so the pixel's Purchase on the confirmation (eventID = order id) is the same."""
        event_id = self.meta_event(
            MetaEventName.PURCHASE,
            checkout_data(order.lines, order.id),
            priority=CRITICAL,
            event_id=order.id,
            email=order.email,
            phone=order.phone,
            external_id=order.customer_id,
        )
        manago = self.container.manago()
        purchase = ManagoPurchase(
            email=order.email,
            order_id=order.id,
            product_ids=tuple(line.product.id for line in order.lines),
            value=order.total,
            currency=order.currency,
        )
        self.runner.defer(
            durable(manago_purchase, manago_purchase_to_json(purchase), service="manago"),
            max_cost_seconds=manago.max_cost_seconds,
            priority=CRITICAL,
            name=purchase.task_name,
            concurrent=True,
        )
        for line in order.lines:
            self.ai_signal(SignalType.PURCHASE, line.product, value=line.quantity)
        return event_id

"""The cart API (the spec's ``AdvApiCartController``), JSON: Meta AddToCart, Advisable AI
add_to_cart and remove_from_cart. An add answers the cart and ``meta_event_id``, the AddToCart's
``event_id`` for the browser pixel's ``eventID``."""

from __future__ import annotations

from pyramid.view import view_config, view_defaults

from app.services import MetaContent, MetaCustomData, MetaEventName, SignalType
from app.shop.catalogue import CURRENCY
from app.shop.sessions import MAX_QUANTITY, CartLine
from app.views.front import ApiError, FrontController, whole_number


def cart_json(lines: list[CartLine]) -> dict[str, object]:
    return {
        "items": [
            {
                "product_id": line.product.id,
                "name": line.product.name,
                "quantity": line.quantity,
                "price": line.product.price,
                "total": line.total_cents / 100,
            }
            for line in lines
        ],
        "total": sum(line.total_cents for line in lines) / 100,
        "currency": CURRENCY,
    }


@view_defaults(renderer="json")
class CartController(FrontController):
    @view_config(route_name="cart", request_method="GET")
    def show(self) -> dict[str, object]:
        return cart_json(self.session.cart)

    @view_config(route_name="cart_items", request_method="POST")
    def add(self) -> dict[str, object]:
        body = self.json_body()
        product = self.product_or_404(str(body.get("product_id", "")))
        quantity = whole_number(body.get("quantity", 1), "quantity", 1, MAX_QUANTITY)
        try:
            addition = self.session.add_to_cart(product, quantity)
        except ValueError as exc:
            raise ApiError(409, str(exc)) from None
        event_id = self.meta_event(
            MetaEventName.ADD_TO_CART,
            MetaCustomData(
                value=product.price_cents * quantity / 100,
                currency=CURRENCY,
                contents=(MetaContent(product.id, quantity, product.price),),
            ),
            # Deterministic: this cart, this product, the how-manieth add to the cart.
            event_id=f"{self.session.cart_id}.{product.id}.{addition.number}",
        )
        self.ai_signal(SignalType.ADD_TO_CART, product, value=quantity)
        self.request.response.status_int = 201
        return {**cart_json(self.session.cart), "meta_event_id": event_id}

    @view_config(route_name="cart_item", request_method="DELETE")
    def remove(self) -> dict[str, object]:
        line = self.session.remove_from_cart(self.request.matchdict["product_id"])
        if line is None:
            raise ApiError(404, "this product is not in the cart")
        self.ai_signal(SignalType.REMOVE_FROM_CART, line.product, value=line.quantity)
        return cart_json(self.session.cart)

    @view_config(route_name="cart", request_method="DELETE")
    def empty(self) -> dict[str, object]:
        self.empty_cart()
        return cart_json([])

    def empty_cart(self) -> list[CartLine]:
        """Every product leaves the cart: Advisable AI hears of each removal."""
        lines = self.session.empty_cart()
        for line in lines:
            self.ai_signal(SignalType.REMOVE_FROM_CART, line.product, value=line.quantity)
        return lines

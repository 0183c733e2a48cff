"""The application's routes: the demo home page and the example shop (docs/example-shop.md)."""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.events import NewResponse

from app.views.security_headers import add_security_headers


def includeme(config: Configurator) -> None:
    config.add_route("home", "/")
    config.add_route("health", "/health")
    # Pages (HTML)
    config.add_route("products", "/products")
    config.add_route("product", "/products/{product_id}")
    config.add_route("vendors", "/vendors")
    config.add_route("vendor", "/vendors/{vendor_id}")
    config.add_route("search", "/search")
    config.add_route("order", "/order")
    config.add_route("register", "/register")
    # API (JSON)
    config.add_route("cart", "/api/cart")
    config.add_route("cart_items", "/api/cart/items")
    config.add_route("cart_item", "/api/cart/items/{product_id}")
    config.add_route("bookmark", "/api/bookmarks/{product_id}")
    config.add_route("rating", "/api/ratings/{product_id}")
    config.add_route("customers", "/api/customers")
    config.add_route("logout", "/api/logout")
    config.add_route("checkout", "/api/checkout")
    config.add_subscriber(add_security_headers, NewResponse)
    config.scan("app.views")


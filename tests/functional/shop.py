"""Driving the example shop through WebTest: a browser's environ, a cart, an order."""

from __future__ import annotations

import hashlib
from typing import Any

from webtest import TestApp

from app.shop.orders import ACCEPTED_CARD, DECLINED_CARD
from tests.personal_data import CLIENT_IP, EMAIL, NAME, PHONE

__all__ = ["CLIENT_IP", "EMAIL", "NAME", "PHONE"]  # the test customer, from tests/personal_data.py

ORIGIN = "https://shop.example"
"""The shop's public origin in these tests (``app.public_origin``): not WebTest's Host (localhost),
so that a URL built from the Host header would show."""
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
BROWSER = {"REMOTE_ADDR": CLIENT_IP, "HTTP_USER_AGENT": USER_AGENT}
SESSION_COOKIE = "shop_session"
VISITOR_COOKIE = "shop_visitor"


def fill_cart(webapp: TestApp, product_id: str = "espresso-250", quantity: int = 2) -> Any:
    return webapp.post_json("/api/cart/items", {"product_id": product_id, "quantity": quantity}, status=201)


def place_order(
    webapp: TestApp,
    *,
    declined: bool = False,
    headers: dict[str, str] | None = None,
    **body: str,
) -> Any:
    """Fill the cart, then check out as a guest; 200 when placed, 402 when declined."""
    fill_cart(webapp)
    order = {"email": EMAIL, "phone": PHONE, "card": DECLINED_CARD if declined else ACCEPTED_CARD, **body}
    return webapp.post_json("/api/checkout", order, headers=headers or {}, status=402 if declined else 200)


def visitor_id(webapp: TestApp) -> str:
    """What the shop tells the integrations instead of the session cookie."""
    return hashlib.sha256(webapp.cookies[SESSION_COOKIE].encode()).hexdigest()[:16]


def matomo_visitor_id(webapp: TestApp) -> str:
    """Matomo's ``_id``: from the long-lived visitor cookie, which sign-in leaves alone."""
    return hashlib.sha256(webapp.cookies[VISITOR_COOKIE].encode()).hexdigest()[:16]

"""Sessions the shop issued only, a logout, and the security headers on every response."""

from __future__ import annotations

import re

import pytest

from app.views.security_headers import SECURITY_HEADERS
from tests.functional.shop import EMAIL, SESSION_COOKIE, fill_cart

INVENTED = "A" * 32  # well-formed: the shape of a real token, never issued


def session_cookie(response) -> str | None:
    found = [value for name, value in response.headerlist if name == "Set-Cookie"
             and value.startswith(f"{SESSION_COOKIE}=")]
    return found[0] if found else None


def test_a_session_id_the_shop_never_issued_is_replaced(webapp):
    webapp.set_cookie(SESSION_COOKIE, INVENTED)

    response = fill_cart(webapp)

    assert session_cookie(response) is not None, "a new id, on the response"
    assert webapp.cookies[SESSION_COOKIE] != INVENTED
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", webapp.cookies[SESSION_COOKIE])
    assert webapp.get("/api/cart").json["items"], "the new session holds the cart"


def test_a_planted_id_gives_the_attacker_nothing(webapp):
    """Session fixation: an attacker plants a token of their own in the victim's browser; the
    victim's cart and sign-in end up under a token the attacker does not know."""
    victim = webapp
    victim.set_cookie(SESSION_COOKIE, INVENTED)
    victim.post_json("/api/customers", {"email": EMAIL}, status=201)
    fill_cart(victim)

    victim.reset()
    victim.set_cookie(SESSION_COOKIE, INVENTED)  # the attacker's browser, with the planted token
    assert victim.get("/api/cart").json["items"] == []
    assert "You are signed in" not in victim.get("/register").text


def test_an_issued_id_keeps_its_session_and_no_new_cookie_is_sent(webapp):
    fill_cart(webapp)
    token = webapp.cookies[SESSION_COOKIE]
    response = webapp.get("/api/cart")
    assert session_cookie(response) is None and webapp.cookies[SESSION_COOKIE] == token
    assert response.json["items"]


def test_logout_ends_the_session_on_the_server_and_in_the_browser(webapp):
    webapp.post_json("/api/customers", {"email": EMAIL}, status=201)
    fill_cart(webapp)
    token = webapp.cookies[SESSION_COOKIE]
    assert "/api/logout" in webapp.get("/register").text, "the signed-in page offers it"

    response = webapp.post_json("/api/logout", {})

    assert response.json == {"signed_in": False}
    cookie = session_cookie(response)
    assert cookie is not None and "Max-Age=0" in cookie and "Path=/" in cookie
    assert SESSION_COOKIE not in webapp.cookies
    webapp.set_cookie(SESSION_COOKIE, token)  # the old token, kept or stolen: worthless now
    assert webapp.get("/api/cart").json["items"] == []
    assert webapp.cookies[SESSION_COOKIE] != token


def test_logout_takes_json_only_so_no_other_site_can_post_it(webapp, deferred_tasks):
    webapp.post_json("/api/customers", {"email": EMAIL}, status=201)
    webapp.post("/api/logout", {"x": "1"}, status=415)
    assert "You are signed in" in webapp.get("/register").text


# --- security headers ---

PAGES = {
    "home": "/", "health": "/health", "products": "/products", "product": "/products/wool-hat",
    "vendors": "/vendors", "vendor": "/vendors/tatra-roasters", "search": "/search?q=hat", "order": "/order",
    "register": "/register", "cart": "/api/cart", "cart_items": "/api/cart/items",
    "cart_item": "/api/cart/items/wool-hat", "bookmark": "/api/bookmarks/wool-hat",
    "rating": "/api/ratings/wool-hat", "customers": "/api/customers", "checkout": "/api/checkout",
    "logout": "/api/logout",
}
"""One request per route (GET: a page, or the API's 404/405/415 answer): the test below checks
that every route of the app is here."""
ERRORS = {"not found": "/no-such-page", "bad URL": "/search?q=%ff", "unknown product": "/products/nope"}


def test_every_route_of_the_shop_is_tried(webapp):
    routes = {route.name for route in webapp.app.routes_mapper.get_routes()
              if not route.pattern.startswith("/probe/")}  # the tests' own views (conftest.py)
    assert routes == set(PAGES)


@pytest.mark.parametrize("path", [*PAGES.values(), *ERRORS.values()], ids=[*PAGES, *ERRORS])
def test_every_response_forbids_framing_and_sniffing_and_keeps_the_url_home(webapp, path):
    response = webapp.get(path, expect_errors=True)
    assert response.status_int < 500
    for name, value in SECURITY_HEADERS:
        assert response.headers.getall(name) == [value], (name, response.status_int)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_the_live_page_keeps_its_own_stricter_policy(make_app):
    app = make_app(**{"dashboard.enabled": "true", "dashboard.require_token": "false"})
    page = app.get("/_deferred")
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert page.headers.getall("Referrer-Policy") == ["same-origin"]
    assert page.headers.getall("X-Frame-Options") == ["DENY"]

"""End to end: a shop route, its deferred tasks after the response, the requests a local stub
of each service receives (pytest-httpserver on 127.0.0.1, ``tests/functional/services_stub.py``).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from webtest import TestApp

from tests.functional.services_stub import (
    ADVISABLE_AI,
    MANAGO,
    MANAGO_UPSERT,
    MATOMO,
    META,
    answer_like_the_services,
    go_live,
    matomo_calls,
    meta_events,
    received,
)
from tests.functional.shop import (
    CLIENT_IP,
    USER_AGENT,
    fill_cart,
    matomo_visitor_id,
    place_order,
    visitor_id,
)
from tests.integration.services import credentials
from tests.integration.services.credentials import (
    ADVISABLE_AI_API_KEY,
    MANAGO_API_KEY,
    MANAGO_CLIENT_ID,
    MANAGO_OWNER,
    MANAGO_SHA,
    MATOMO_TOKEN_AUTH,
    META_ACCESS_TOKEN,
)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def shop(make_app, httpserver: HTTPServer) -> TestApp:
    webapp = make_app()
    go_live(webapp, httpserver.url_for("").rstrip("/"))
    return webapp


@pytest.fixture(autouse=True)
def no_secret_in_the_logs(logs) -> Iterator[None]:
    yield
    text = "\n".join(str(record["message"]) for record in logs.records)
    leaked = [secret for secret in credentials.SECRET_VALUES if secret in text]
    assert not leaked, f"secret values leaked into the logs: {leaked}"


def page_data(page: Any) -> dict[str, Any]:
    """The data-* attributes of a page's <body>, JSON ones decoded."""
    tag = re.search(r"<body([^>]*)>", page.text)
    assert tag is not None
    data = {name: html.unescape(value) for name, value in re.findall(r' data-([a-z-]+)="([^"]*)"', tag[1])}
    return {name: json.loads(value) if value.startswith("[") else value for name, value in data.items()}


def test_a_product_page_reaches_meta_advisable_ai_and_matomo(shop, httpserver, deferred_tasks):
    answer_like_the_services(httpserver)
    shop.set_cookie("_fbp", "fb.1.1596403881668.1116446470")
    page = shop.get("/products/espresso-250")
    assert deferred_tasks.executed == ["meta.view_content", "advisable_ai.view", "matomo.flush"]

    [(request, meta)] = received(httpserver, META)
    assert meta["access_token"] == META_ACCESS_TOKEN and request.query_string == b""
    [event] = meta["data"]
    uuid.UUID(event["event_id"])
    assert event == {
        "event_name": "ViewContent",
        "event_time": event["event_time"],
        "event_id": event["event_id"],
        "action_source": "website",
        "event_source_url": "https://shop.example/products/espresso-250",
        "user_data": {
            "client_ip_address": CLIENT_IP,
            "client_user_agent": USER_AGENT,
            "fbp": "fb.1.1596403881668.1116446470",
        },
        "custom_data": {
            "value": 12.9,
            "currency": "EUR",
            "content_type": "product",
            "content_ids": ["espresso-250"],
            "contents": [{"id": "espresso-250", "quantity": 1, "item_price": 12.9}],
        },
    }

    [(request, signal)] = received(httpserver, ADVISABLE_AI)
    assert request.headers["Authorization"] == f"Bearer {ADVISABLE_AI_API_KEY}"
    assert signal == {
        "type": "view",
        "session_id": visitor_id(shop),
        "item_id": "espresso-250",
        "timestamp": signal["timestamp"],
    }

    [(request, bulk)] = received(httpserver, MATOMO)
    assert bulk["token_auth"] == MATOMO_TOKEN_AUTH
    [call] = matomo_calls(bulk)
    assert call == {
        "idsite": "7",
        "rec": "1",
        "apiv": "1",
        "url": "https://shop.example/products/espresso-250",
        "cip": CLIENT_IP,
        "ua": USER_AGENT,
        "cdt": call["cdt"],
        "action_name": "Espresso beans 250 g",
        "_id": matomo_visitor_id(shop),
        "pv_id": call["pv_id"],
    }
    # The page hands its script what the pixel and the API calls need.
    assert page_data(page) == {
        "matomo-pv-id": call["pv_id"],
        "meta-events": [{"event": "ViewContent", "eventID": event["event_id"]}],
    }


def test_a_checkout_reaches_all_four_services_with_the_purchase(shop, httpserver):
    answer_like_the_services(httpserver)
    order = place_order(shop).json["order"]

    [purchase] = meta_events(httpserver, "Purchase")
    assert purchase["event_id"] == order  # deterministic: the order id, as Meta suggests
    assert purchase["user_data"]["em"] == [sha256("jane.doe@example.com")]  # trimmed, lowercased
    assert purchase["user_data"]["ph"] == [sha256("48601234567")]  # digits with the country code
    assert "external_id" not in purchase["user_data"]  # a guest
    assert purchase["custom_data"] == {
        "value": 25.8,
        "currency": "EUR",
        "content_type": "product",
        "content_ids": ["espresso-250"],
        "contents": [{"id": "espresso-250", "quantity": 2, "item_price": 12.9}],
        "order_id": order,  # and no num_items: Meta documents it for InitiateCheckout only
    }

    [(_, upsert)] = received(httpserver, MANAGO_UPSERT)
    assert upsert == {
        "clientId": MANAGO_CLIENT_ID,
        "apiKey": MANAGO_API_KEY,
        "requestTime": upsert["requestTime"],
        "sha": MANAGO_SHA,
        "owner": MANAGO_OWNER,
        "contact": {"email": "jane.doe@example.com"},
    }
    [(_, manago)] = received(httpserver, MANAGO)
    assert manago == {
        "clientId": MANAGO_CLIENT_ID,
        "apiKey": MANAGO_API_KEY,
        "requestTime": manago["requestTime"],
        "sha": MANAGO_SHA,
        "email": "jane.doe@example.com",
        "owner": MANAGO_OWNER,
        "contactEvent": {
            "contactExtEventType": "PURCHASE",
            "date": manago["contactEvent"]["date"],
            "externalId": order,
            "products": "espresso-250",
            "value": 25.8,
            "detail1": "EUR",
        },
    }

    signals = [body for _, body in received(httpserver, ADVISABLE_AI)]
    assert [(s["type"], s.get("value")) for s in signals] == [("add_to_cart", 2), ("purchase", 2)]

    [(_, bulk)] = received(httpserver, MATOMO)  # the add to cart tracked nothing
    payment, ecommerce = matomo_calls(bulk)
    assert [payment[key] for key in ("e_c", "e_a", "e_n", "e_v")] == ["checkout", "payment", order, "25.8"]
    assert ecommerce["ec_id"] == order and ecommerce["revenue"] == "25.8" and ecommerce["idgoal"] == "0"
    assert json.loads(ecommerce["ec_items"]) == [["espresso-250", "Espresso beans 250 g", "coffee", 12.9, 2]]


def test_a_customers_events_carry_their_hashed_details_and_user_id(shop, httpserver):
    answer_like_the_services(httpserver)
    customer = shop.post_json("/api/customers", {"email": " Jane@Example.com", "phone": "+48 601 234 567"})
    customer_id = customer.json["customer"]
    shop.get("/products/wool-hat")

    registration, = meta_events(httpserver, "CompleteRegistration")
    assert registration["event_id"] == customer.json["meta_event_id"] == customer_id
    view, = meta_events(httpserver, "ViewContent")
    for event in (registration, view):
        assert event["user_data"]["em"] == [sha256("jane@example.com")]
        assert event["user_data"]["external_id"] == [sha256(customer_id)]
    switch, view_signal = [body for _, body in received(httpserver, ADVISABLE_AI)]
    assert switch["type"] == "session_switch" and switch["user_id"] == customer_id
    assert view_signal["user_id"] == customer_id and view_signal["session_id"] == visitor_id(shop)
    registered, page_view = [matomo_calls(body)[0] for _, body in received(httpserver, MATOMO)]
    assert registered["uid"] == page_view["uid"] == customer_id
    assert (registered["e_c"], registered["e_a"]) == ("customer", "register")


def test_each_request_flushes_its_own_matomo_tracker(shop, httpserver):
    """The tracker is per request: a server thread's next request starts with a new one."""
    answer_like_the_services(httpserver)
    shop.get("/products/wool-hat")
    shop.get("/vendors/tatra-roasters", headers={"Referer": "https://shop.example/products/wool-hat"})
    first, second = [matomo_calls(body) for _, body in received(httpserver, MATOMO)]
    assert [call["url"] for call in first] == ["https://shop.example/products/wool-hat"]
    assert [call["url"] for call in second] == ["https://shop.example/vendors/tatra-roasters"]
    assert second[0]["urlref"] == "https://shop.example/products/wool-hat" and "urlref" not in first[0]


def test_failing_services_never_change_the_response(shop, httpserver, deferred_tasks, logs):
    httpserver.expect_request("", method="POST").respond_with_data("down", status=500)  # every path
    response = place_order(shop)
    assert response.status_int == 200 and response.json["status"] == "placed"
    assert set(response.json) == {"order", "status", "total", "currency", "meta_event_id"}
    checkout = deferred_tasks.requests[-1]
    assert checkout.report is not None
    assert checkout.report.executed == (
        "meta.purchase", "manago.purchase", "advisable_ai.purchase", "matomo.flush",
    )
    # Manago's upsert failed: its event was not sent after it.
    assert {request.path for request, _ in httpserver.log} == {META, MANAGO_UPSERT, ADVISABLE_AI, MATOMO}
    failures = [m for m in logs.at("WARNING") if "failed after" in m and "HTTP 500" in m]
    assert len(failures) == 6  # add to cart: Meta and AI; checkout: Meta, Manago, AI, Matomo


def test_once_a_service_is_known_down_its_tasks_make_no_request(shop, httpserver, deferred_tasks):
    httpserver.expect_request(ADVISABLE_AI, method="POST").respond_with_data("down", status=503)
    for product in ("wool-hat", "wool-socks", "amber-pendant"):  # fail_max = 3
        shop.post_json(f"/api/bookmarks/{product}", {}, status=201)
    assert len(httpserver.log) == 3
    response = shop.post_json("/api/bookmarks/espresso-250", {}, status=201)
    assert response.json == {"product": "espresso-250", "bookmarked": True}
    assert deferred_tasks.executed[-1] == "advisable_ai.bookmark"  # ran, and returned at once
    assert len(httpserver.log) == 3  # the breaker is open: no request reached the stub


def test_without_credentials_nothing_is_sent(make_app, httpserver, deferred_tasks, logs):
    webapp = make_app()  # environ={}: every service in dry-run
    place_order(webapp)
    assert httpserver.log == []
    dry_runs = {m.split()[0] for m in logs.at("INFO") if "dry-run (no credentials configured)" in m}
    assert dry_runs == {
        "meta.add_to_cart", "advisable_ai.add_to_cart", "meta.purchase", "manago.upsert", "manago.purchase",
        "advisable_ai.purchase", "matomo.flush",
    }


# --- attribution: the page the visitor is on, and ids the browser can share ---


def test_api_events_are_attributed_to_the_page_and_its_page_view(shop, httpserver):
    """The page's script sends page_url and the page's pv_id with each API call (layout.py);
    Meta's event_source_url and Matomo's url and pv_id are then the page's."""
    answer_like_the_services(httpserver)
    product_page = shop.get("/products/espresso-250")
    pv_id = page_data(product_page)["matomo-pv-id"]
    added = shop.post_json(
        "/api/cart/items",
        {"product_id": "espresso-250", "quantity": 2, "page_url": "https://shop.example/products/espresso-250#x"},
        headers={"X-Matomo-Pv-Id": pv_id},
        status=201,
    ).json
    again = fill_cart(shop, "espresso-250", 1).json  # no page_url, no Referer: the API's own URL

    first, second = meta_events(httpserver, "AddToCart")
    assert first["event_source_url"] == "https://shop.example/products/espresso-250"  # fragment dropped
    assert second["event_source_url"] == "https://shop.example/api/cart/items"
    # Deterministic: the cart, the product, the how-manieth add; the answer gives it to the pixel.
    cart_id = first["event_id"].split(".")[0]
    assert [first["event_id"], second["event_id"]] == [
        f"{cart_id}.espresso-250.1", f"{cart_id}.espresso-250.2",
    ]
    assert [added["meta_event_id"], again["meta_event_id"]] == [first["event_id"], second["event_id"]]

    order_page = shop.get("/order")
    order_pv_id = page_data(order_page)["matomo-pv-id"]
    assert order_pv_id != pv_id
    [initiate] = meta_events(httpserver, "InitiateCheckout")
    assert initiate["custom_data"]["num_items"] == 3
    assert page_data(order_page)["meta-events"] == [
        {"event": "InitiateCheckout", "eventID": initiate["event_id"]},
    ]
    order = shop.post_json(
        "/api/checkout", {"email": "jane@example.com", "card": "4242424242424242"},
        headers={"Referer": "https://shop.example/order", "X-Matomo-Pv-Id": order_pv_id},
    ).json
    [purchase] = meta_events(httpserver, "Purchase")
    assert purchase["event_source_url"] == "https://shop.example/order"
    assert purchase["event_id"] == order["meta_event_id"] == order["order"]

    page_views = [matomo_calls(body) for _, body in received(httpserver, MATOMO)]
    product_view, order_view, checkout = page_views
    assert [call["pv_id"] for call in product_view] == [pv_id]
    on_the_order_page = ("https://shop.example/order", order_pv_id)
    assert [(call["url"], call["pv_id"]) for call in order_view] == [on_the_order_page]
    assert [(call["url"], call["pv_id"]) for call in checkout] == [on_the_order_page] * 2
    assert all("urlref" not in call for call in checkout)  # the Referer of an API call is the page itself


@pytest.mark.parametrize(
    "headers",
    [
        {"Referer": "https://evil.example/products/wool-hat", "X-Matomo-Pv-Id": "abc"},
        {"Referer": "https://shop.example.evil.example/x", "X-Matomo-Pv-Id": "abc-12"},
        {"Referer": "https://shop.example/x\x1b[2J", "X-Matomo-Pv-Id": "abc\t12"},
        {"Referer": "javascript:alert(1)", "X-Matomo-Pv-Id": "a" * 7},
        {"Referer": "https://shop.example/" + "x" * 2048},
    ],
    ids=["other-site", "lookalike-host", "control-chars", "not-http", "too-long"],
)
def test_a_referer_or_pv_id_that_is_not_this_shops_is_ignored(shop, httpserver, headers):
    answer_like_the_services(httpserver)
    shop.get("/products/wool-hat")
    shop.post_json(
        "/api/cart/items",
        {"product_id": "wool-hat", "page_url": "https://evil.example/"},
        headers=headers,
        status=201,
    )
    [added] = meta_events(httpserver, "AddToCart")
    assert added["event_source_url"] == "https://shop.example/api/cart/items"


def test_matomos_visitor_id_comes_from_a_long_lived_cookie_that_sign_in_keeps(shop, httpserver):
    answer_like_the_services(httpserver)
    first = shop.get("/products/wool-hat")
    [cookie] = [c for c in first.headers.getall("Set-Cookie") if c.startswith("shop_visitor=")]
    assert "Max-Age=34128000" in cookie  # 395 days: 13 months
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "secure" not in cookie.lower()
    session_before = shop.cookies["shop_session"]

    shop.post_json("/api/customers", {"email": "jane@example.com"})
    shop.get("/products/wool-hat")

    assert shop.cookies["shop_session"] != session_before  # renewed at sign-in...
    ids = [call["_id"] for _, body in received(httpserver, MATOMO) for call in matomo_calls(body)]
    assert len(ids) == 3 and set(ids) == {matomo_visitor_id(shop)}  # ...the visitor id is not
    assert matomo_visitor_id(shop) != visitor_id(shop)


def test_the_visitor_cookie_is_secure_over_https(shop, httpserver):
    answer_like_the_services(httpserver)
    response = shop.get("/products/wool-hat", extra_environ={"wsgi.url_scheme": "https"})
    [cookie] = [c for c in response.headers.getall("Set-Cookie") if c.startswith("shop_visitor=")]
    assert "secure" in cookie.lower()


def test_a_malformed_visitor_cookie_is_replaced(shop, httpserver):
    answer_like_the_services(httpserver)
    shop.set_cookie("shop_visitor", "forged")
    response = shop.get("/products/wool-hat")
    assert any(c.startswith("shop_visitor=") for c in response.headers.getall("Set-Cookie"))
    assert re.fullmatch(r"[0-9a-f]{32}", shop.cookies["shop_visitor"])


def test_fbc_is_built_from_fbclid_when_there_is_no_cookie_and_kept_in_one(shop, httpserver):
    answer_like_the_services(httpserver)
    page = shop.get("/products/wool-hat", params={"fbclid": "IwAR2F4-Xy_9zq"})
    [cookie] = [c for c in page.headers.getall("Set-Cookie") if c.startswith("_fbc=")]
    assert "HttpOnly" not in cookie  # the pixel reads it too
    fill_cart(shop, "wool-hat", 1)  # an API call later: the cookie's value, the same fbc

    view, = meta_events(httpserver, "ViewContent")
    added, = meta_events(httpserver, "AddToCart")
    fbc = view["user_data"]["fbc"]
    assert re.fullmatch(r"fb\.1\.\d{13}\.IwAR2F4-Xy_9zq", fbc)
    assert added["user_data"]["fbc"] == fbc == shop.cookies["_fbc"]


def test_an_existing_fbc_cookie_wins_over_fbclid(shop, httpserver):
    answer_like_the_services(httpserver)
    shop.set_cookie("_fbc", "fb.1.1554763741205.AbCdEf")
    page = shop.get("/products/wool-hat", params={"fbclid": "Other"})
    assert not [c for c in page.headers.getall("Set-Cookie") if c.startswith("_fbc=")]
    view, = meta_events(httpserver, "ViewContent")
    assert view["user_data"]["fbc"] == "fb.1.1554763741205.AbCdEf"


@pytest.mark.parametrize(
    "fbclid", ["", "a b", "<script>", "x" * 501, "abc\n", "ab.cd", "ąę"], ids=repr,
)
def test_a_malformed_fbclid_or_fbc_cookie_is_ignored_never_a_500(shop, httpserver, fbclid):
    answer_like_the_services(httpserver)
    shop.set_cookie("_fbc", "not-an-fbc")
    page = shop.get("/products/wool-hat", params={"fbclid": fbclid})
    assert page.status_int == 200
    assert not [c for c in page.headers.getall("Set-Cookie") if c.startswith("_fbc=")]
    view, = meta_events(httpserver, "ViewContent")
    assert "fbc" not in view["user_data"]

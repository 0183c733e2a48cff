"""End to end: a shop route, its deferred tasks after the response, the requests a local stub
of each service receives (pytest-httpserver on 127.0.0.1).

The services are pointed at the stub the dependency-injector way: the container's settings
providers are overridden before the first request builds the services.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
from dependency_injector import providers
from pytest_httpserver import HTTPServer
from webtest import TestApp

from app.services import AdvisableAISettings, ManagoSettings, MatomoSettings, MetaSettings
from tests.functional.shop import CLIENT_IP, USER_AGENT, place_order, visitor_id
from tests.integration.services import credentials
from tests.integration.services.credentials import (
    ADVISABLE_AI_API_KEY,
    MANAGO_API_KEY,
    MANAGO_CLIENT_ID,
    MANAGO_OWNER,
    MANAGO_SHA,
    MATOMO_TOKEN_AUTH,
    META_ACCESS_TOKEN,
    META_PIXEL_ID,
)

META = f"/v21.0/{META_PIXEL_ID}/events"
ADVISABLE_AI = "/v1/signals"
MANAGO = "/api/contact/addContactExtEvent"
MATOMO = "/matomo.php"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def answer_like_the_services(httpserver: HTTPServer) -> None:
    httpserver.expect_request(META, method="POST").respond_with_json({"events_received": 1})
    httpserver.expect_request(ADVISABLE_AI, method="POST").respond_with_json({"accepted": True})
    httpserver.expect_request(MANAGO, method="POST").respond_with_json({"success": True})
    httpserver.expect_request(MATOMO, method="POST").respond_with_json(
        {"status": "success", "tracked": 1, "invalid": 0}
    )


def go_live(webapp: TestApp, base_url: str) -> None:
    """Every integration live against ``base_url``, with the fast timeouts and fail_max=3."""
    container = webapp.app.registry.container
    container.meta_settings.override(
        providers.Object(MetaSettings.from_environ(credentials.meta_env(base_url)))
    )
    container.advisable_ai_settings.override(
        providers.Object(AdvisableAISettings.from_environ(credentials.advisable_ai_env(base_url)))
    )
    container.manago_settings.override(
        providers.Object(ManagoSettings.from_environ(credentials.manago_env(base_url)))
    )
    container.matomo_settings.override(
        providers.Object(MatomoSettings.from_environ(credentials.matomo_env(base_url)))
    )


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


def received(httpserver: HTTPServer, path: str) -> list[tuple[Any, dict[str, Any]]]:
    return [(r, json.loads(r.get_data())) for r, _ in httpserver.log if r.path == path]


def meta_events(httpserver: HTTPServer, event_name: str) -> list[dict[str, Any]]:
    events = [body["data"][0] for _, body in received(httpserver, META)]
    return [event for event in events if event["event_name"] == event_name]


def matomo_calls(body: dict[str, Any]) -> list[dict[str, str]]:
    return [dict(parse_qsl(call.removeprefix("?"))) for call in body["requests"]]


def test_a_product_page_reaches_meta_advisable_ai_and_matomo(shop, httpserver, deferred_tasks):
    answer_like_the_services(httpserver)
    shop.set_cookie("_fbp", "fb.1.1596403881668.1116446470")
    shop.get("/products/espresso-250")
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
        "event_source_url": "http://localhost/products/espresso-250",
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
        "url": "http://localhost/products/espresso-250",
        "_id": visitor_id(shop),
        "cip": CLIENT_IP,
        "ua": USER_AGENT,
        "cdt": call["cdt"],
        "action_name": "Espresso beans 250 g",
    }


def test_a_checkout_reaches_all_four_services_with_the_purchase(shop, httpserver):
    answer_like_the_services(httpserver)
    order = place_order(shop).json["order"]

    [purchase] = meta_events(httpserver, "Purchase")
    assert purchase["user_data"]["em"] == [sha256("jane.doe@example.com")]  # trimmed, lowercased
    assert purchase["user_data"]["ph"] == [sha256("48601234567")]  # digits with the country code
    assert "external_id" not in purchase["user_data"]  # a guest
    assert purchase["custom_data"] == {
        "value": 25.8,
        "currency": "EUR",
        "content_type": "product",
        "content_ids": ["espresso-250"],
        "contents": [{"id": "espresso-250", "quantity": 2, "item_price": 12.9}],
        "order_id": order,
        "num_items": 2,
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
    shop.get("/vendors/tatra-roasters", headers={"Referer": "http://localhost/products/wool-hat"})
    first, second = [matomo_calls(body) for _, body in received(httpserver, MATOMO)]
    assert [call["url"] for call in first] == ["http://localhost/products/wool-hat"]
    assert [call["url"] for call in second] == ["http://localhost/vendors/tatra-roasters"]
    assert second[0]["urlref"] == "http://localhost/products/wool-hat" and "urlref" not in first[0]


def test_failing_services_never_change_the_response(shop, httpserver, deferred_tasks, logs):
    httpserver.expect_request("", method="POST").respond_with_data("down", status=500)  # every path
    response = place_order(shop)
    assert response.status_int == 200 and response.json["status"] == "placed"
    assert set(response.json) == {"order", "status", "total", "currency"}
    checkout = deferred_tasks.requests[-1]
    assert checkout.report is not None
    assert checkout.report.executed == (
        "meta.purchase", "manago.purchase", "advisable_ai.purchase", "matomo.flush",
    )
    assert {request.path for request, _ in httpserver.log} == {META, MANAGO, ADVISABLE_AI, MATOMO}
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
        "meta.add_to_cart", "advisable_ai.add_to_cart", "meta.purchase", "manago.purchase",
        "advisable_ai.purchase", "matomo.flush",
    }

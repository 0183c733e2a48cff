"""Meta Conversions API against a local stub: the request Meta would receive, byte for byte."""

from __future__ import annotations

import dataclasses
import json

import httpx
from pytest_httpserver import HTTPServer

from app.services.breaker_store import BreakerStore
from app.services.delivery import Outcome
from app.services.http_client import USER_AGENT
from app.services.meta import (
    API_VERSION,
    MetaContent,
    MetaConversionsService,
    MetaCustomData,
    MetaEvent,
    MetaEventName,
    MetaSettings,
    MetaUserData,
)
from app.services.meta_hashing import sha256_hex
from tests.integration.services.credentials import META_ACCESS_TOKEN, META_PIXEL_ID, meta_env
from tests.integration.services.log_capture import LogCapture

EVENTS_PATH = f"/{API_VERSION}/{META_PIXEL_ID}/events"


def make_meta(
    environ: dict[str, str], http: httpx.Client, store: BreakerStore
) -> MetaConversionsService:
    settings = MetaSettings.from_environ(environ)
    return MetaConversionsService(settings, http, store.breaker("meta", settings.breaker))


def purchase() -> MetaEvent:
    return MetaEvent(
        MetaEventName.PURCHASE,
        "https://shop.example/checkout/done",
        MetaUserData(
            client_ip_address="203.0.113.7",
            client_user_agent="Mozilla/5.0 (X11; Linux x86_64)",
            email="  John_Smith@gmail.com ",
            phone="+1 (650) 555-1212",
            external_id=" Customer-42 ",
            fbp="fb.1.1596403881668.1116446470",
        ),
        MetaCustomData(
            value=59.9,
            currency="EUR",
            contents=(MetaContent("sku-1", 2, 19.95), MetaContent("sku-2", 1, 20.0)),
            order_id="order-1001",
        ),
        event_id="2f0e7bd6-0c1e-4f5a-9d0e-7a1f5a1f0c11",
        event_time=1_700_000_000,
    )


def test_purchase_posts_the_conversions_api_event_with_the_token_in_the_body(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    httpserver.expect_request(EVENTS_PATH, method="POST").respond_with_json({"events_received": 1})
    meta = make_meta(meta_env(httpserver.url_for("")), http_client, store)

    assert meta.send_event(purchase()) is Outcome.SENT

    ((request, _),) = httpserver.log
    assert request.query_string == b""
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == USER_AGENT
    assert json.loads(request.get_data()) == {
        "data": [
            {
                "event_name": "Purchase",
                "event_time": 1_700_000_000,
                "event_id": "2f0e7bd6-0c1e-4f5a-9d0e-7a1f5a1f0c11",
                "action_source": "website",
                "event_source_url": "https://shop.example/checkout/done",
                "user_data": {
                    # Meta's documented example hash for john_smith@gmail.com
                    "em": ["62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"],
                    # ...and for 16505551212
                    "ph": ["e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"],
                    # sha256("customer-42")
                    "external_id": [
                        "a045eb33f8797f35ea7d5fad7c5e0d021e2142e9c1bb6e9dc9f45b4f503b03e8"
                    ],
                    "client_ip_address": "203.0.113.7",
                    "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
                    "fbp": "fb.1.1596403881668.1116446470",
                },
                "custom_data": {
                    "value": 59.9,
                    "currency": "EUR",
                    "content_type": "product",
                    "content_ids": ["sku-1", "sku-2"],
                    "contents": [
                        {"id": "sku-1", "quantity": 2, "item_price": 19.95},
                        {"id": "sku-2", "quantity": 1, "item_price": 20.0},
                    ],
                    "order_id": "order-1001",
                },
            }
        ],
        "access_token": META_ACCESS_TOKEN,
    }


def test_test_event_code_is_sent_when_configured(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    httpserver.expect_request(EVENTS_PATH, method="POST").respond_with_json({"events_received": 1})
    environ = meta_env(httpserver.url_for(""), META_TEST_EVENT_CODE="TEST4242")
    meta = make_meta(environ, http_client, store)

    meta.send_event(purchase())

    ((request, _),) = httpserver.log
    assert json.loads(request.get_data())["test_event_code"] == "TEST4242"


def test_without_credentials_the_event_is_logged_at_info_and_nothing_is_sent(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    meta = make_meta({"META_GRAPH_URL": httpserver.url_for("")}, http_client, store)

    assert meta.send_event(purchase()) is Outcome.DRY_RUN

    assert httpserver.log == []
    (line,) = logs.messages("INFO", service="meta")
    assert line.startswith("meta.purchase dry-run (no credentials configured), not sent: "
                           "event 2f0e7bd6-0c1e-4f5a-9d0e-7a1f5a1f0c11, ")
    assert line.endswith(" bytes") and "access_token" not in line and "{" not in line


def test_a_4xx_is_logged_as_our_bug_and_does_not_trip_the_breaker(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    httpserver.expect_request(EVENTS_PATH).respond_with_json(
        {"error": {"message": "Invalid parameter", "code": 100}}, status=400
    )
    meta = make_meta(meta_env(httpserver.url_for("")), http_client, store)

    outcomes = [meta.send_event(purchase()) for _ in range(5)]  # fail_max is 3

    assert outcomes == [Outcome.REJECTED] * 5
    assert len(httpserver.log) == 5
    errors = logs.messages("ERROR", service="meta")
    assert len(errors) == 5
    assert errors[0].endswith("HTTP 400, 84 bytes (code 100)") and "Invalid parameter" not in errors[0]


def test_the_event_on_the_wire_is_what_metas_sdk_builds_for_the_same_event(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    """facebook-business's Event.normalize() is the reference: the same fields, the same hashes
    (its Normalize for em and ph; external_id handed to it hashed, as we send it)."""
    from facebook_business.adobjects.serverside.action_source import (
        ActionSource,
    )
    from facebook_business.adobjects.serverside.content import Content
    from facebook_business.adobjects.serverside.custom_data import (
        CustomData,
    )
    from facebook_business.adobjects.serverside.event import Event
    from facebook_business.adobjects.serverside.normalize import (
        Normalize,
    )
    from facebook_business.adobjects.serverside.user_data import (
        UserData,
    )

    httpserver.expect_request(EVENTS_PATH, method="POST").respond_with_json({"events_received": 1})
    meta = make_meta(meta_env(httpserver.url_for("")), http_client, store)
    ours = purchase()
    meta.send_event(ours)
    ((request, _),) = httpserver.log
    [sent] = json.loads(request.get_data())["data"]

    user, custom = ours.user_data, ours.custom_data
    reference = Event(
        event_name=ours.event_name.value,
        event_time=ours.event_time,
        event_id=ours.event_id,
        event_source_url=ours.event_source_url,
        action_source=ActionSource.WEBSITE,
        user_data=UserData(
            emails=[user.email],
            phones=[user.phone],
            external_ids=[Normalize.normalize_field("external_id", user.external_id)],
            client_ip_address=user.client_ip_address,
            client_user_agent=user.client_user_agent,
            fbp=user.fbp,
        ),
        custom_data=CustomData(
            value=custom.value,
            currency=custom.currency,
            content_type="product",
            content_ids=[c.id for c in custom.contents],
            contents=[Content(product_id=c.id, quantity=c.quantity, item_price=c.item_price)
                      for c in custom.contents],
            order_id=custom.order_id,
        ),
    ).normalize()
    reference["custom_data"]["currency"] = reference["custom_data"]["currency"].upper()  # SDK: "eur"
    assert sent == reference
    assert "num_items" not in sent["custom_data"]  # a Purchase: Meta documents it for InitiateCheckout


def test_a_phone_typed_with_its_country_code_but_no_plus_is_not_prefixed_twice(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    httpserver.expect_request(EVENTS_PATH, method="POST").respond_with_json({"events_received": 1})
    environ = meta_env(httpserver.url_for(""), META_DEFAULT_PHONE_COUNTRY_CODE="48")
    meta = make_meta(environ, http_client, store)
    for typed in ("48601234567", "601 234 567", "+48 601 234 567", "+44 (0)20 7946 0958"):
        event = purchase()
        meta.send_event(
            MetaEvent(event.event_name, event.event_source_url,
                      dataclasses.replace(event.user_data, phone=typed), event.custom_data)
        )

    phones = [json.loads(r.get_data())["data"][0]["user_data"]["ph"] for r, _ in httpserver.log]
    assert phones == [[sha256_hex("48601234567")]] * 3 + [[sha256_hex("442079460958")]]

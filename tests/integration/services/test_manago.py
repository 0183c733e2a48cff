"""Manago (SALESmanago API) against a local stub: signed purchase events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
from pytest_httpserver import HTTPServer

from app.services.breaker_store import BreakerStore
from app.services.delivery import Outcome
from app.services.manago import EVENT_PATH, ManagoPurchase, ManagoService, ManagoSettings
from tests.integration.services.credentials import (
    MANAGO_API_KEY,
    MANAGO_CLIENT_ID,
    MANAGO_OWNER,
    MANAGO_SHA,
    manago_env,
)
from tests.integration.services.log_capture import LogCapture

NOW = 1_773_500_000.123


def make_manago(environ: dict[str, str], http: httpx.Client, store: BreakerStore) -> ManagoService:
    settings = ManagoSettings.from_environ(environ)
    breaker = store.breaker("manago", settings.breaker)
    return ManagoService(settings, http, breaker, clock=lambda: NOW)


def order() -> ManagoPurchase:
    return ManagoPurchase(
        email=" Jane.Doe@Example.com",
        order_id="order-1001",
        product_ids=("sku-1", "sku-2"),
        value=59.9,
        currency="EUR",
        location="shop-eu",
        date=datetime(2026, 3, 14, 15, 0, tzinfo=UTC),
    )


def test_purchase_is_an_external_event_signed_as_salesmanago_requires(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    httpserver.expect_request(EVENT_PATH, method="POST").respond_with_json(
        {"success": True, "message": [], "eventId": "e-1"}
    )
    manago = make_manago(manago_env(httpserver.url_for("")), http_client, store)

    assert manago.send_purchase(order()) is Outcome.SENT

    ((request, _),) = httpserver.log
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.get_data()) == {
        "clientId": MANAGO_CLIENT_ID,
        "apiKey": MANAGO_API_KEY,
        "requestTime": 1_773_500_000_123,
        "sha": MANAGO_SHA,
        "owner": MANAGO_OWNER,
        "email": "jane.doe@example.com",
        "contactEvent": {
            "contactExtEventType": "PURCHASE",
            "date": 1_773_500_400_000,
            "externalId": "order-1001",
            "products": "sku-1,sku-2",
            "value": 59.9,
            "detail1": "EUR",
            "location": "shop-eu",
        },
    }


def test_success_false_is_a_rejection_that_does_not_trip_the_breaker(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    httpserver.expect_request(EVENT_PATH).respond_with_json(
        {"success": False, "message": ["Not authenticated"]}
    )
    manago = make_manago(manago_env(httpserver.url_for("")), http_client, store)

    outcomes = [manago.send_purchase(order()) for _ in range(4)]  # fail_max is 3

    assert outcomes == [Outcome.REJECTED] * 4
    assert "Not authenticated" in logs.messages("ERROR", service="manago")[0]


def test_a_200_that_is_not_salesmanago_json_counts_as_a_failure(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    httpserver.expect_request(EVENT_PATH).respond_with_data("<html>maintenance</html>")
    manago = make_manago(manago_env(httpserver.url_for("")), http_client, store)

    outcomes = [manago.send_purchase(order()) for _ in range(4)]

    assert outcomes == [Outcome.FAILED] * 3 + [Outcome.SKIPPED]
    assert len(httpserver.log) == 3

"""Manago (SALESmanago API) against a local stub: the contact upserted, then the signed purchase
event at API v2's endpoint, within SALESmanago's field limits."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import httpx
from pytest_httpserver import HTTPServer

from app.services.breaker_store import BreakerStore
from app.services.delivery import Outcome
from app.services.manago import (
    EVENT_PATH,
    UPSERT_PATH,
    ManagoPurchase,
    ManagoService,
    ManagoSettings,
)
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


AUTHENTICATION = {
    "clientId": MANAGO_CLIENT_ID,
    "apiKey": MANAGO_API_KEY,
    "requestTime": 1_773_500_000_123,
    "sha": MANAGO_SHA,
}


def answer_success(httpserver: HTTPServer) -> None:
    httpserver.expect_request(UPSERT_PATH, method="POST").respond_with_json(
        {"success": True, "message": [], "contactId": "c-1"}
    )
    httpserver.expect_request(EVENT_PATH, method="POST").respond_with_json(
        {"success": True, "message": [], "eventId": "e-1"}
    )


def bodies(httpserver: HTTPServer) -> list[tuple[str, dict[str, object]]]:
    return [(request.path, json.loads(request.get_data())) for request, _ in httpserver.log]


def test_purchase_upserts_the_contact_then_adds_the_v2_external_event_signed_as_required(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    answer_success(httpserver)
    manago = make_manago(manago_env(httpserver.url_for("")), http_client, store)

    assert manago.send_purchase(order()) is Outcome.SENT

    assert EVENT_PATH == "/api/v2/contact/addContactExtEvent"
    assert all(r.headers["Content-Type"] == "application/json" for r, _ in httpserver.log)
    (upsert_path, upsert), (event_path, event) = bodies(httpserver)
    assert upsert_path == "/api/contact/upsert"
    assert upsert == {  # the e-mail alone: no consent flag, no other field overwritten
        **AUTHENTICATION,
        "owner": MANAGO_OWNER,
        "contact": {"email": "jane.doe@example.com"},
    }
    assert event_path == EVENT_PATH
    assert event == {
        **AUTHENTICATION,
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


def test_products_are_cut_to_512_characters_by_whole_ids_with_a_warning(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    answer_success(httpserver)
    manago = make_manago(manago_env(httpserver.url_for("")), http_client, store)
    ids = tuple(f"product-{n:04d}" for n in range(100))  # 12 characters each, 1299 joined

    assert manago.send_purchase(dataclasses.replace(order(), product_ids=ids)) is Outcome.SENT

    (_, _), (_, event) = bodies(httpserver)
    products = event["contactEvent"]["products"]  # type: ignore[index]
    assert products == ",".join(ids[:39])  # 39 * 12 + 38 commas = 506; a 40th would make 519
    assert len(products) <= 512
    (warning,) = logs.messages("WARNING", service="manago")
    assert "order-1001" in warning and "39 of 100 ids" in warning
    assert "jane" not in warning.lower()  # no contact details in the log


def test_products_within_the_limit_are_sent_whole_without_a_warning(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    answer_success(httpserver)
    manago = make_manago(manago_env(httpserver.url_for("")), http_client, store)
    ids = ("p" * 255, "q" * 256)  # exactly 512 with the comma

    manago.send_purchase(dataclasses.replace(order(), product_ids=ids))

    (_, _), (_, event) = bodies(httpserver)
    assert event["contactEvent"]["products"] == "p" * 255 + "," + "q" * 256  # type: ignore[index]
    assert logs.messages("WARNING", service="manago") == []


def test_a_failed_upsert_sends_no_event(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    httpserver.expect_request(UPSERT_PATH).respond_with_data("down", status=503)
    httpserver.expect_request(EVENT_PATH).respond_with_json({"success": True})
    manago = make_manago(manago_env(httpserver.url_for("")), http_client, store)

    assert manago.send_purchase(order()) is Outcome.FAILED
    assert [path for path, _ in bodies(httpserver)] == [UPSERT_PATH]


def test_success_false_is_a_rejection_that_does_not_trip_the_breaker(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    httpserver.expect_request(UPSERT_PATH).respond_with_json({"success": True})
    httpserver.expect_request(EVENT_PATH).respond_with_json(
        {"success": False, "message": ["Contact jane@example.com not authenticated"]}
    )
    manago = make_manago(manago_env(httpserver.url_for("")), http_client, store)

    outcomes = [manago.send_purchase(order()) for _ in range(4)]  # fail_max is 3

    assert outcomes == [Outcome.REJECTED] * 4
    error = logs.messages("ERROR", service="manago")[0]
    assert "success=false" in error and "authenticated" not in error, "its message may quote the contact"


def test_a_200_that_is_not_salesmanago_json_counts_as_a_failure(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    httpserver.expect_request(UPSERT_PATH).respond_with_data("<html>maintenance</html>")
    manago = make_manago(manago_env(httpserver.url_for("")), http_client, store)

    outcomes = [manago.send_purchase(order()) for _ in range(4)]

    assert outcomes == [Outcome.FAILED] * 3 + [Outcome.SKIPPED]
    assert len(httpserver.log) == 3  # three upserts; no event after a failed one

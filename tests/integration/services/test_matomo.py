"""Matomo against a local stub: one bulk request per HTTP request, only when tracked."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import httpx
from pytest_httpserver import HTTPServer

from app.services.breaker_store import BreakerStore
from app.services.delivery import Outcome
from app.services.matomo import MatomoItem, MatomoService, MatomoSettings, MatomoVisit
from tests.integration.services.credentials import MATOMO_TOKEN_AUTH, matomo_env
from tests.integration.services.log_capture import LogCapture

NOW = 1_773_500_000.9


def make_matomo(environ: dict[str, str], http: httpx.Client, store: BreakerStore) -> MatomoService:
    settings = MatomoSettings.from_environ(environ)
    breaker = store.breaker("matomo", settings.breaker)
    return MatomoService(settings, http, breaker, clock=lambda: NOW)


VISIT = MatomoVisit(
    url="https://shop.example/checkout/done",
    visitor_id="0123456789abcdef",
    client_ip="203.0.113.7",
    user_agent="Mozilla/5.0",
    user_id="customer-42",
    page_view_id="Xy12ab",
)


def test_flush_sends_every_tracked_call_in_one_bulk_request(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    httpserver.expect_request("/matomo.php", method="POST").respond_with_json(
        {"status": "success", "tracked": 3, "invalid": 0}
    )
    tracker = make_matomo(matomo_env(httpserver.url_for("")), http_client, store).tracker(VISIT)
    tracker.track_page_view("Order complete")
    tracker.track_ecommerce_order(
        "order-1001", 59.9, [MatomoItem("sku-1", "Mug", 19.95, 2, "Kitchen")], shipping=5
    )
    tracker.track_event("checkout", "coupon", name="SPRING", value=10)

    assert tracker.flush() is Outcome.SENT

    ((request, _),) = httpserver.log
    body = json.loads(request.get_data())
    assert body["token_auth"] == MATOMO_TOKEN_AUTH
    assert request.query_string == b""
    common = {
        "idsite": "7",
        "rec": "1",
        "apiv": "1",
        "url": "https://shop.example/checkout/done",
        "_id": "0123456789abcdef",
        "uid": "customer-42",
        "cip": "203.0.113.7",
        "ua": "Mozilla/5.0",
        "cdt": "1773500000",
        "pv_id": "Xy12ab",  # the page view and its events, linked
    }
    assert [dict(parse_qsl(r.removeprefix("?"))) for r in body["requests"]] == [
        {**common, "action_name": "Order complete"},
        {
            **common,
            "idgoal": "0",
            "ec_id": "order-1001",
            "revenue": "59.9",
            "ec_items": '[["sku-1","Mug","Kitchen",19.95,2]]',
            "ec_sh": "5",
        },
        {**common, "e_c": "checkout", "e_a": "coupon", "e_n": "SPRING", "e_v": "10"},
    ]
    assert body["requests"][0] == (
        "?idsite=7&rec=1&apiv=1&url=https%3A%2F%2Fshop.example%2Fcheckout%2Fdone"
        "&_id=0123456789abcdef&uid=customer-42&cip=203.0.113.7&ua=Mozilla%2F5.0&pv_id=Xy12ab"
        "&cdt=1773500000&action_name=Order+complete"
    )


def test_a_tracker_with_nothing_tracked_sends_nothing(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    tracker = make_matomo(matomo_env(httpserver.url_for("")), http_client, store).tracker(VISIT)

    assert not tracker.has_tracked
    assert tracker.flush() is Outcome.EMPTY
    assert httpserver.log == []


def test_flush_sends_each_call_once(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    httpserver.expect_request("/matomo.php").respond_with_json({"status": "success", "tracked": 1})
    tracker = make_matomo(matomo_env(httpserver.url_for("")), http_client, store).tracker(VISIT)
    tracker.track_page_view("Home")

    assert [tracker.flush(), tracker.flush()] == [Outcome.SENT, Outcome.EMPTY]
    assert len(httpserver.log) == 1


def test_requests_matomo_counts_as_invalid_are_logged_as_our_bug(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    httpserver.expect_request("/matomo.php").respond_with_json(
        {"status": "success", "tracked": 0, "invalid": 1}
    )
    tracker = make_matomo(matomo_env(httpserver.url_for("")), http_client, store).tracker(VISIT)
    tracker.track_page_view("Home")

    assert tracker.flush() is Outcome.REJECTED
    assert "1 invalid tracking request" in logs.messages("ERROR", service="matomo")[0]


def test_without_credentials_the_bulk_request_is_only_logged(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    tracker = make_matomo({}, http_client, store).tracker(VISIT)
    tracker.track_page_view("Home")

    assert tracker.flush() is Outcome.DRY_RUN
    assert httpserver.log == []
    (line,) = logs.messages("INFO", service="matomo")
    assert line.startswith("matomo.flush dry-run (no credentials configured), not sent: 1 tracking request")
    assert "Home" not in line and "token_auth" not in line and "http" not in line

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from app.services.breaker_store import BreakerStore
from app.services.http_client import create_http_client
from app.services.matomo import (
    MatomoItem,
    MatomoService,
    MatomoSettings,
    MatomoTracker,
    MatomoVisit,
    is_page_view_id,
    new_page_view_id,
)

VISIT = MatomoVisit("https://shop.example/", MatomoVisit.visitor_id_for("session-cookie"))


def tracker_without_credentials() -> MatomoTracker:
    settings = MatomoSettings()
    service = MatomoService(
        settings, create_http_client(), BreakerStore().breaker("matomo", settings.breaker),
        clock=lambda: 1_700_000_000.5,
    )  # fmt: skip
    return service.tracker(VISIT)


def test_the_visitor_id_is_16_hex_characters_that_do_not_reveal_the_session() -> None:
    visitor_id = MatomoVisit.visitor_id_for("session-cookie")

    assert len(visitor_id) == 16 and "session" not in visitor_id
    assert visitor_id == MatomoVisit.visitor_id_for("session-cookie")


def test_nothing_tracked_means_no_flush_task_is_needed() -> None:
    tracker = tracker_without_credentials()
    assert not tracker.has_tracked

    tracker.track_page_view("Home")

    assert tracker.has_tracked


def test_a_page_view_can_name_another_url() -> None:
    tracker = tracker_without_credentials()

    tracker.track_page_view("Search", url="https://shop.example/search?q=mug")

    params = dict(parse_qsl(tracker.requests[0].removeprefix("?")))
    assert params["url"] == "https://shop.example/search?q=mug"
    assert params["cdt"] == "1700000000"


@pytest.mark.parametrize(
    "track",
    [
        lambda t: t.track_event("", "a"),
        lambda t: t.track_event("c", "a", value=float("nan")),
        lambda t: t.track_ecommerce_order("", 1.0, []),
        lambda t: t.track_ecommerce_order("o", -1.0, []),
        lambda t: t.track_ecommerce_order("o", 1.0, [], tax=-2),
    ],
    ids=["no-category", "nan", "no-order-id", "negative-revenue", "negative-tax"],
)
def test_invalid_tracking_calls_fail_in_the_request(track: object) -> None:
    with pytest.raises(ValueError):
        track(tracker_without_credentials())  # type: ignore[operator]


def test_invalid_items_and_visits_are_refused() -> None:
    with pytest.raises(ValueError):
        MatomoItem("sku", "Mug", 1.0, quantity=0)
    with pytest.raises(ValueError):
        MatomoVisit("https://shop.example/", "not-hex")


def test_settings_validate_the_site_id_and_pair_url_with_token() -> None:
    assert MatomoSettings.from_environ({"MATOMO_SITE_ID": "3"}).site_id == 3
    with pytest.raises(ValueError, match="MATOMO_SITE_ID='0' is out of range"):
        MatomoSettings.from_environ({"MATOMO_SITE_ID": "0"})
    with pytest.raises(ValueError, match="MATOMO_URL set but MATOMO_TOKEN_AUTH not"):
        MatomoSettings.from_environ({"MATOMO_URL": "https://matomo.example"})
    live = MatomoSettings.from_environ(
        {"MATOMO_URL": "https://matomo.example/", "MATOMO_TOKEN_AUTH": "t0ken"}
    )
    assert live.tracking_url == "https://matomo.example/matomo.php"
    assert "t0ken" not in repr(live)


def test_page_view_ids_are_six_random_alphanumerics() -> None:
    ids = {new_page_view_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(is_page_view_id(pv_id) for pv_id in ids)


@pytest.mark.parametrize("bad", ["", "abc12", "abc1234", "abc-12", "abc 12", "ab\nc12", "ábc123"])
def test_anything_else_is_not_a_page_view_id(bad: str) -> None:
    assert not is_page_view_id(bad)
    with pytest.raises(ValueError, match="page_view_id must be 6 alphanumeric"):
        MatomoVisit("https://shop.example/", VISIT.visitor_id, page_view_id=bad)


def test_the_page_view_and_its_events_carry_the_same_pv_id() -> None:
    settings = MatomoSettings()
    service = MatomoService(
        settings, create_http_client(), BreakerStore().breaker("matomo", settings.breaker)
    )
    tracker = service.tracker(MatomoVisit("https://shop.example/", VISIT.visitor_id, page_view_id="a1B2c3"))
    tracker.track_page_view("Home")
    tracker.track_event("cart", "add")

    calls = [dict(parse_qsl(request.removeprefix("?"))) for request in tracker.requests]
    assert [call["pv_id"] for call in calls] == ["a1B2c3", "a1B2c3"]

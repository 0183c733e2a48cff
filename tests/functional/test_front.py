"""The front controller's own actions (bookmarks, ratings) and what every controller shares."""

from __future__ import annotations

from tests.functional.services_stub import ai_signals
from tests.functional.shop import visitor_id


def test_a_bookmark_defers_the_ai_signal_once(live, httpserver, deferred_tasks):
    assert live.post_json("/api/bookmarks/wool-hat", {}, status=201).json == {
        "product": "wool-hat", "bookmarked": True,
    }
    live.post_json("/api/bookmarks/wool-hat", {}, status=200)  # already bookmarked: no signal
    assert deferred_tasks.names == ["advisable_ai.bookmark"]
    deferred_tasks.assert_deferred("advisable_ai.bookmark", priority=50)
    [signal] = ai_signals(httpserver, "bookmark")
    assert signal["session_id"] == visitor_id(live) and signal["item_id"] == "wool-hat"


def test_removing_a_bookmark_defers_the_ai_signal_only_if_there_was_one(webapp, deferred_tasks):
    webapp.delete("/api/bookmarks/wool-hat")
    webapp.post_json("/api/bookmarks/wool-hat", {}, status=201)
    assert webapp.delete("/api/bookmarks/wool-hat").json["bookmarked"] is False
    assert deferred_tasks.names == ["advisable_ai.bookmark", "advisable_ai.remove_bookmark"]
    deferred_tasks.assert_deferred("advisable_ai.remove_bookmark", priority=50)


def test_a_rating_defers_the_ai_signal_with_its_value(live, httpserver, deferred_tasks):
    assert live.post_json("/api/ratings/amber-pendant", {"stars": "4"}).json["stars"] == 4
    deferred_tasks.assert_deferred("advisable_ai.rating", priority=50)
    [signal] = ai_signals(httpserver, "rating")
    assert (signal["item_id"], signal["value"]) == ("amber-pendant", 4)


def test_a_rating_out_of_range_is_refused_before_anything_is_deferred(webapp, deferred_tasks):
    for stars in (0, 6, 4.5, "five", None):
        webapp.post_json("/api/ratings/amber-pendant", {"stars": stars}, status=400)
    deferred_tasks.assert_nothing_deferred()


def test_an_unknown_product_cannot_be_bookmarked(webapp, deferred_tasks):
    assert webapp.post_json("/api/bookmarks/nope", {}, status=404).json == {"error": "no product 'nope'"}
    deferred_tasks.assert_nothing_deferred()


def test_the_api_takes_json_only(webapp, deferred_tasks):
    webapp.post("/api/bookmarks/wool-hat", "", content_type="application/x-www-form-urlencoded", status=415)
    webapp.post("/api/ratings/wool-hat", "{", content_type="application/json", status=400)
    deferred_tasks.assert_nothing_deferred()


def test_a_malformed_session_cookie_is_replaced(webapp):
    webapp.set_cookie("shop_session", "forged")
    response = webapp.get("/products")
    assert any(c.startswith("shop_session=") for c in response.headers.getall("Set-Cookie"))
    assert webapp.cookies["shop_session"] != "forged"

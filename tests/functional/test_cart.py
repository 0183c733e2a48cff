"""The cart API: Meta AddToCart and Advisable AI add/remove signals; JSON answers."""

from __future__ import annotations

from tests.functional.services_stub import ai_signals, meta_events
from tests.functional.shop import fill_cart


def test_adding_to_the_cart_defers_meta_add_to_cart_and_the_ai_signal(live, httpserver, deferred_tasks):
    response = fill_cart(live, "wool-hat", 3)
    assert response.json == {
        "items": [{"product_id": "wool-hat", "name": "Merino wool hat", "quantity": 3, "price": 29.0,
                   "total": 87.0}],
        "total": 87.0,
        "currency": "EUR",
        "meta_event_id": response.json["meta_event_id"],
    }
    assert deferred_tasks.names == ["meta.add_to_cart", "advisable_ai.add_to_cart"]
    deferred_tasks.assert_deferred("meta.add_to_cart", priority=50)
    deferred_tasks.assert_deferred("advisable_ai.add_to_cart", priority=50)
    [meta] = meta_events(httpserver, "AddToCart")
    assert meta["custom_data"]["value"] == 87.0 and meta["custom_data"]["contents"][0]["quantity"] == 3
    assert meta["event_id"] == response.json["meta_event_id"]
    [signal] = ai_signals(httpserver, "add_to_cart")
    assert (signal["item_id"], signal["value"]) == ("wool-hat", 3)


def test_the_api_answers_no_matomo_flush_when_nothing_was_tracked(webapp, deferred_tasks):
    fill_cart(webapp)
    webapp.get("/api/cart")
    deferred_tasks.assert_not_deferred("matomo.flush")


def test_adding_again_adds_up(webapp):
    fill_cart(webapp, "wool-hat", 1)
    assert fill_cart(webapp, "wool-hat", 2).json["items"][0]["quantity"] == 3


def test_removing_a_product_defers_the_ai_signal(webapp, deferred_tasks):
    fill_cart(webapp)
    deferred_tasks.clear()
    assert webapp.delete("/api/cart/items/espresso-250").json["items"] == []
    assert deferred_tasks.names == ["advisable_ai.remove_from_cart"]
    deferred_tasks.assert_deferred("advisable_ai.remove_from_cart", priority=50)


def test_emptying_the_cart_defers_one_removal_per_product(webapp, deferred_tasks):
    fill_cart(webapp, "wool-hat")
    fill_cart(webapp, "wool-socks")
    deferred_tasks.clear()
    webapp.delete("/api/cart")
    assert deferred_tasks.names == ["advisable_ai.remove_from_cart"] * 2


def test_removing_what_is_not_in_the_cart_is_a_404(webapp, deferred_tasks):
    webapp.delete("/api/cart/items/wool-hat", status=404)
    deferred_tasks.assert_nothing_deferred()


def test_an_unknown_product_or_a_bad_quantity_is_refused_without_tasks(webapp, deferred_tasks):
    webapp.post_json("/api/cart/items", {"product_id": "nope"}, status=404)
    webapp.post_json("/api/cart/items", {"product_id": "wool-hat", "quantity": 0}, status=400)
    webapp.post_json("/api/cart/items", {"product_id": "wool-hat", "quantity": True}, status=400)
    webapp.post_json("/api/cart/items", ["wool-hat"], status=400)
    deferred_tasks.assert_nothing_deferred()


def test_each_visitor_has_a_cart_of_their_own(webapp):
    fill_cart(webapp)
    webapp.reset()  # a new visitor: no cookie
    assert webapp.get("/api/cart").json["items"] == []

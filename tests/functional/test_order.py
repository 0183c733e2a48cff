"""The order page: showing a full cart starts a checkout (Meta InitiateCheckout, critical)."""

from __future__ import annotations

from tests.functional.services_stub import meta_events
from tests.functional.shop import fill_cart


def test_the_order_page_defers_initiate_checkout_as_critical(live, httpserver, deferred_tasks):
    fill_cart(live, "wool-hat", 2)
    deferred_tasks.clear()
    response = live.get("/order")
    assert "Merino wool hat" in response.text and "€58.00" in response.text
    assert deferred_tasks.names == ["meta.initiate_checkout", "matomo.flush"]
    deferred_tasks.assert_deferred("meta.initiate_checkout", priority=100, always=False)
    [meta] = meta_events(httpserver, "InitiateCheckout")
    assert meta["custom_data"]["num_items"] == 2 and meta["custom_data"]["value"] == 58.0


def test_an_empty_cart_starts_no_checkout(webapp, deferred_tasks):
    assert "Your cart is empty" in webapp.get("/order").text
    assert deferred_tasks.names == ["matomo.flush"]

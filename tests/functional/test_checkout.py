"""The checkout API through WebTest, asserted with the deferred_tasks fixture (pyramid_deferred's plugin).

The integrations run in dry-run here (no credentials): they send nothing, and log what they would
have sent by name and size. Where a test reads what is sent, they are live against local stubs.
"""

from __future__ import annotations

from dependency_injector import providers
from pyramid_deferred.hook import get_hook
from webtest import TestApp

from app.factory import build_container, make_configurator
from tests.functional.conftest import no_logging_setup
from tests.functional.services_stub import MATOMO, matomo_calls, meta_events, received
from tests.functional.shop import BROWSER, fill_cart, place_order

PURCHASE_TASKS = ["meta.purchase", "manago.purchase", "advisable_ai.purchase"]


def checkout_request(deferred_tasks):
    """The last request: the checkout (the ones before it filled the cart)."""
    return deferred_tasks.requests[-1]


def test_a_placed_order_defers_the_three_purchases_and_one_flush(live, httpserver, deferred_tasks):
    response = place_order(live)
    assert response.json["status"] == "placed"
    checkout = checkout_request(deferred_tasks)
    assert checkout.names == [*PURCHASE_TASKS, "matomo.flush"]
    for name in PURCHASE_TASKS:
        deferred_tasks.assert_deferred(name, priority=100, always=False)
    deferred_tasks.assert_deferred("matomo.flush", priority=10, always=False)
    assert checkout.report is not None
    assert checkout.report.executed == (*PURCHASE_TASKS, "matomo.flush")
    # the flush deferred after the payment event was replaced (unique); the cart's removal
    # signals were forgotten: the products were bought, not removed
    assert checkout.report.forgotten == ("matomo.flush", "advisable_ai.remove_from_cart")
    order = response.json["order"]
    [meta] = meta_events(httpserver, "Purchase")
    assert meta["custom_data"]["order_id"] == order and meta["custom_data"]["value"] == 25.8
    *_, (_, flush) = received(httpserver, MATOMO)
    payment, ecommerce = matomo_calls(flush)  # one flush carries both
    assert payment["e_a"] == "payment" and ecommerce["ec_id"] == order


def test_several_cart_lines_give_one_advisable_ai_purchase_each(webapp, deferred_tasks):
    fill_cart(webapp, "wool-socks", 1)
    place_order(webapp)  # adds espresso-250
    assert checkout_request(deferred_tasks).names.count("advisable_ai.purchase") == 2


def test_a_declined_payment_discards_the_purchases_and_still_flushes_matomo(
    live, httpserver, deferred_tasks, logs
):
    response = place_order(live, declined=True)
    assert response.json["status"] == "declined"
    checkout = checkout_request(deferred_tasks)
    assert checkout.names == [*PURCHASE_TASKS, "matomo.flush"]
    deferred_tasks.assert_deferred("matomo.flush", always=True)
    assert checkout.request_failed is True
    assert checkout.report is not None and checkout.report.executed == ("matomo.flush",)
    assert checkout.report.discarded == tuple(PURCHASE_TASKS)
    assert not meta_events(httpserver, "Purchase")
    *_, (_, flush) = received(httpserver, MATOMO)
    assert [call["e_a"] for call in matomo_calls(flush)] == ["payment", "payment_declined"]
    assert any("meta.purchase" in line and "Discarded" in line for line in logs.at("INFO"))
    assert live.get("/api/cart").json["items"][0]["product_id"] == "espresso-250"  # the cart is kept


def test_with_execute_off_nothing_runs_until_the_test_says(webapp, deferred_tasks, logs):
    deferred_tasks.execute = False
    place_order(webapp)
    deferred_tasks.clear()
    place_order(webapp)
    assert checkout_request(deferred_tasks).names == [*PURCHASE_TASKS, "matomo.flush"]
    assert not [m for m in logs.at("INFO") if "dry-run" in m]
    reports = deferred_tasks.run()
    assert [report.executed for report in reports] == [
        ("meta.add_to_cart", "advisable_ai.add_to_cart"), (*PURCHASE_TASKS, "matomo.flush"),
    ]
    assert len([m for m in logs.at("INFO") if m.startswith("meta.purchase dry-run")]) == 1


def test_each_request_is_captured_on_its_own(webapp, deferred_tasks):
    place_order(webapp)
    webapp.get("/health")
    assert [request.names for request in deferred_tasks.requests] == [
        ["meta.add_to_cart", "advisable_ai.add_to_cart"], [*PURCHASE_TASKS, "matomo.flush"], [],
    ]


def test_an_empty_cart_is_refused_and_defers_nothing(webapp, deferred_tasks):
    response = webapp.post_json("/api/checkout", {"email": "jane@example.com"}, status=409)
    assert response.json == {"error": "the cart is empty"}
    deferred_tasks.assert_nothing_deferred()


def test_a_bad_email_is_refused_before_anything_is_deferred(webapp, deferred_tasks):
    fill_cart(webapp)
    deferred_tasks.clear()
    response = webapp.post_json("/api/checkout", {"email": "not an address"}, status=400)
    assert "email" in response.json["error"]
    deferred_tasks.assert_nothing_deferred()


def test_only_a_json_body_is_accepted(webapp, deferred_tasks):
    """A cross-site HTML form cannot send application/json: the API needs no CSRF token."""
    fill_cart(webapp)
    deferred_tasks.clear()
    webapp.post("/api/checkout", {"email": "jane@example.com"}, status=415)
    deferred_tasks.assert_nothing_deferred()


def test_disabled_mode_is_captured_too(make_app, deferred_tasks):
    webapp = make_app(**{"deferred_task.enabled": "false"})
    place_order(webapp)
    assert deferred_tasks.executed[-4:] == [*PURCHASE_TASKS, "matomo.flush"]


class SteppingClock:
    """Each reading is 5 s after the previous one: every task 'takes' 5 s, deterministically."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 5.0
        return self.now


def test_a_task_overrunning_its_declared_cost_is_logged_with_both_figures(tmp_path, logs):
    settings = {
        "deferred_task.log_path": str(tmp_path / "deferred_task.log"),
        "deferred_task.budget_seconds": "0",  # unlimited: the stepping clock would use it up
        "deferred_task.concurrent_threads": "0",  # one after the other: one clock, no interleaving
    }
    container = build_container(settings, environ={})
    container.logging.override(providers.Resource(no_logging_setup))
    router = make_configurator(settings, container).make_wsgi_app()
    get_hook(router.registry).clock = SteppingClock()
    webapp = TestApp(router, extra_environ=BROWSER)
    place_order(webapp)
    container.shutdown_resources()
    warnings = [w for w in logs.at("WARNING") if "overran its declared cost" in w]
    # Manago declares two requests' worth (the upsert, then the event): more than 5 s.
    assert container.manago().max_cost_seconds > 5
    assert [w.split()[2] for w in warnings][-3:] == ["meta.purchase", "advisable_ai.purchase", "matomo.flush"]
    meta = container.meta().max_cost_seconds
    assert f"took 5.000s, declared {meta:g}s" in warnings[-3]

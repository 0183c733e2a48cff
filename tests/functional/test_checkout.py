"""The demo checkout through WebTest, asserted with the deferred_tasks fixture (app.pytest_plugin)."""

from __future__ import annotations

from dependency_injector import providers
from webtest import TestApp

from app.factory import build_container, make_configurator
from tests.functional.conftest import no_logging_setup


def test_a_placed_order_defers_the_purchase_the_audit_and_one_flush(webapp, deferred_tasks, logs):
    response = webapp.get("/checkout")
    assert response.json["status"] == "placed"
    assert deferred_tasks.names == ["meta.purchase", "audit.checkout", "matomo.flush"]
    deferred_tasks.assert_deferred("meta.purchase", priority=100, max_cost_seconds=0.5, always=False)
    deferred_tasks.assert_deferred("audit.checkout", always=True)
    [report] = deferred_tasks.reports
    assert report.executed == ("meta.purchase", "audit.checkout", "matomo.flush")
    assert report.forgotten == ("matomo.flush", "advisable.cart_abandoned")  # replaced, then forgotten
    assert logs.matching(f"Purchase event for order {response.json['order']}")
    [flush] = logs.matching("matomo.flush sent")
    assert "payment step" in flush["message"]  # the last unique one won


def test_a_declined_payment_discards_the_purchase_and_still_audits(webapp, deferred_tasks, logs):
    webapp.get("/checkout", params={"declined": "1"}, status=402)
    assert deferred_tasks.names == [
        "meta.purchase", "audit.checkout", "advisable.cart_abandoned", "matomo.flush",
    ]
    [request] = deferred_tasks.requests
    assert request.request_failed is True
    assert request.report is not None and request.report.executed == ("audit.checkout",)
    assert request.report.discarded == ("meta.purchase", "advisable.cart_abandoned", "matomo.flush")
    assert not logs.matching("Purchase event") and logs.matching("checkout attempt")
    assert any("meta.purchase" in line and "Discarded" in line for line in logs.at("INFO"))


def test_with_execute_off_nothing_runs_until_the_test_says(webapp, deferred_tasks, logs):
    deferred_tasks.execute = False
    webapp.get("/checkout")
    webapp.get("/checkout")
    assert deferred_tasks.names == ["meta.purchase", "audit.checkout", "matomo.flush"] * 2
    assert not logs.matching(" sent: ")
    reports = deferred_tasks.run()
    expected = ("meta.purchase", "audit.checkout", "matomo.flush")
    assert [report.executed for report in reports] == [expected, expected]
    assert len(logs.matching("Purchase event")) == 2


def test_each_request_is_captured_on_its_own(webapp, deferred_tasks):
    webapp.get("/checkout")
    webapp.get("/health")
    assert [request.names for request in deferred_tasks.requests] == [
        ["meta.purchase", "audit.checkout", "matomo.flush"], [],
    ]


def test_a_request_that_defers_nothing_is_captured_as_such(webapp, deferred_tasks):
    webapp.get("/health")
    deferred_tasks.assert_nothing_deferred()


def test_disabled_mode_is_captured_too(make_app, deferred_tasks, logs):
    webapp = make_app(**{"deferred_task.enabled": "false"})
    webapp.get("/checkout")
    assert deferred_tasks.executed == ["meta.purchase", "audit.checkout", "matomo.flush"]


class SteppingClock:
    """Each reading is one second after the previous one: every task 'takes' 1 s, deterministically."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_a_task_overrunning_its_declared_cost_is_logged_with_both_figures(tmp_path, logs):
    settings = {"deferred_task.log_path": str(tmp_path / "deferred_task.log")}
    container = build_container(settings, environ={})
    container.logging.override(providers.Resource(no_logging_setup))
    container.clock.override(providers.Object(SteppingClock()))
    webapp = TestApp(make_configurator(settings, container).make_wsgi_app())
    webapp.get("/checkout")
    container.shutdown_resources()
    warnings = [w for w in logs.at("WARNING") if "overran its declared cost" in w]
    assert [w.split()[2] for w in warnings] == ["meta.purchase", "audit.checkout", "matomo.flush"]
    assert "took 1.000s, declared 0.5s" in warnings[0] and "took 1.000s, declared 0.1s" in warnings[1]

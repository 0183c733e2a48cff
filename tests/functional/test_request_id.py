"""The request id: echoed in X-Request-ID, and on every log record of that request's tasks only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from dependency_injector import providers
from pyramid_deferred.hook import get_hook
from pyramid_deferred.metrics import get_metrics
from webtest import TestApp

from app.factory import build_container, make_configurator
from tests.functional.conftest import no_logging_setup
from tests.functional.shop import BROWSER, place_order

GENERATED = re.compile(r"^[0-9a-f]{12}-[0-9a-f]+$")
"""An id the add-on made: its process prefix and a counter."""


def records_of_order(logs, response) -> list[Any]:
    """The records the checkout's tasks wrote for this response's order id: the dry-runs of
    meta.purchase, manago.upsert, manago.purchase and matomo.flush name it."""
    order = response.json["order"]
    return [r for r in logs.records if order in r["message"]]


def test_a_sane_incoming_id_is_kept_and_echoed(webapp):
    response = webapp.get("/health", headers={"X-Request-ID": "edge-7f3a.1"})
    assert response.headers["X-Request-ID"] == "edge-7f3a.1"


def test_without_an_incoming_id_one_is_generated_per_request(webapp):
    first = webapp.get("/health").headers["X-Request-ID"]
    second = webapp.get("/health").headers["X-Request-ID"]
    assert GENERATED.match(first) and GENERATED.match(second) and first != second


@pytest.mark.parametrize("bad", ["x" * 129, "two words", "caf\u00e9", "<script>\x07"])
def test_an_incoming_id_that_is_not_sane_is_replaced(webapp, bad):
    echoed = webapp.get("/health", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
    assert GENERATED.match(echoed)


def test_error_responses_carry_the_id_too(webapp):
    headers = {"X-Request-ID": "req-402"}
    response = place_order(webapp, declined=True, headers=headers)
    assert response.headers["X-Request-ID"] == "req-402"


def test_each_requests_task_records_carry_its_own_id_and_no_other(webapp, logs):
    first = place_order(webapp, headers={"X-Request-ID": "req-first"})
    second = place_order(webapp)
    second_id = second.headers["X-Request-ID"]
    first_records, second_records = records_of_order(logs, first), records_of_order(logs, second)
    assert len(first_records) == 4 and len(second_records) == 4
    assert {r["extra"]["request_id"] for r in first_records} == {"req-first"}
    assert {r["extra"]["request_id"] for r in second_records} == {second_id}


def test_the_runners_own_lines_carry_the_id(webapp, logs):
    place_order(webapp, declined=True, headers={"X-Request-ID": "req-declined"})
    [discarded] = [r for r in logs.records if "Discarded deferred task meta.purchase" in r["message"]]
    *_, summary = [r for r in logs.records if r["message"].startswith("Deferred tasks done")]  # cart first
    assert discarded["extra"]["request_id"] == summary["extra"]["request_id"] == "req-declined"


def test_disabled_mode_runs_carry_the_id(make_app, logs):
    webapp = make_app(**{"deferred_task.enabled": "false"})
    response = place_order(webapp, headers={"X-Request-ID": "req-inline"})
    assert {r["extra"]["request_id"] for r in records_of_order(logs, response)} == {"req-inline"}


def test_the_views_own_lines_carry_the_id_too(webapp, logs):
    place_order(webapp, headers={"X-Request-ID": "req-view"})
    forgotten_line = "advisable_ai.remove_from_cart (1 queued) forgotten"
    [forgotten] = [r for r in logs.records if forgotten_line in r["message"]]
    assert forgotten["extra"]["request_id"] == "req-view"


def test_the_add_on_s_one_tween_is_outermost_so_every_line_of_the_request_has_the_id(webapp):
    from pyramid.interfaces import ITweens

    names = [name for name, _ in webapp.app.registry.queryUtility(ITweens).implicit()]
    assert names[0] == "pyramid_deferred.tween.deferred_task_tween_factory"

def test_tasks_handed_off_to_the_worker_thread_keep_their_requests_id(tmp_path, logs):
    """strategy=thread: the batch runs on a deferred-task-N thread, the id travels with it."""
    settings = {
        "deferred_task.log_path": str(tmp_path / "deferred_task.log"),
        "deferred_task.strategy": "thread",
        "metrics.enabled": "true",
    }
    container = build_container(settings, environ={})
    container.logging.override(providers.Resource(no_logging_setup))
    router = make_configurator(settings, container).make_wsgi_app()
    webapp = TestApp(router, extra_environ=BROWSER)
    responses = {
        request_id: place_order(webapp, headers={"X-Request-ID": request_id})
        for request_id in ("req-thread-1", "req-thread-2", "req-thread-3")
    }
    assert get_hook(router.registry).worker.shutdown(grace_seconds=30) == []  # waits for the queue to drain
    for request_id, response in responses.items():
        records = records_of_order(logs, response)
        assert len(records) == 4
        assert {r["extra"]["request_id"] for r in records} == {request_id}
        # the hand-off thread ran the batch; its concurrent tasks ran on the add-on's pool
        assert all(r["thread"].name.startswith(("deferred-task-", "deferred-concurrent")) for r in records)
    executed = get_metrics(router.registry).registry.get_sample_value(
        "deferred_tasks_total", {"name": "meta.purchase", "outcome": "executed"}
    )
    assert executed == 3  # the metrics observer ran on the worker thread too
    container.shutdown_resources()

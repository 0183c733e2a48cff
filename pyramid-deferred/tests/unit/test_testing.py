"""DeferredTaskCapture, framework-free: what it records, and its execute switch."""

from __future__ import annotations

import pytest

from pyramid_deferred.core import DeferredTaskRunner
from pyramid_deferred.testing import CapturedTask, DeferredTaskCapture

CRITICAL = DeferredTaskRunner.PRIORITY_CRITICAL


def a_request(capture: DeferredTaskCapture, trail: list[str], *, request_failed: bool = False) -> None:
    """What the hook does with one request's runner: the view defers, then run() after the response."""
    runner = capture.runner(budget_seconds=10)
    runner.defer(lambda: trail.append("flush"), max_cost_seconds=0.5, priority=10, name="matomo.flush")
    runner.defer(
        lambda: trail.append("purchase"), max_cost_seconds=3, priority=CRITICAL, name="meta.purchase"
    )
    runner.defer(lambda: trail.append("audit"), max_cost_seconds=0.1, name="audit.log", always=True)
    runner.run(request_failed=request_failed)


def test_records_names_priorities_costs_and_always_in_run_order_and_runs_them():
    capture, trail = DeferredTaskCapture(), []
    a_request(capture, trail)
    assert capture.names == ["meta.purchase", "audit.log", "matomo.flush"]
    assert capture.tasks[0] == CapturedTask("meta.purchase", CRITICAL, 3, False)
    assert capture.tasks[1].always is True
    assert trail == ["purchase", "audit", "flush"]
    assert capture.executed == ["meta.purchase", "audit.log", "matomo.flush"]


def test_each_runner_is_one_request_in_the_order_they_started():
    capture, trail = DeferredTaskCapture(), []
    a_request(capture, trail)
    empty = capture.runner()
    empty.run()
    assert [request.names for request in capture.requests] == [
        ["meta.purchase", "audit.log", "matomo.flush"], [],
    ]


def test_a_failed_request_is_recorded_with_what_was_discarded():
    capture, trail = DeferredTaskCapture(), []
    a_request(capture, trail, request_failed=True)
    [request] = capture.requests
    assert request.request_failed is True and trail == ["audit"]
    assert request.report is not None and request.report.discarded == ("meta.purchase", "matomo.flush")


def test_without_execute_nothing_runs_and_run_later_runs_them_as_the_hook_would_have():
    capture, trail = DeferredTaskCapture(execute=False), []
    a_request(capture, trail, request_failed=True)
    assert trail == [] and capture.reports == []
    assert capture.names == ["meta.purchase", "audit.log", "matomo.flush"]
    [report] = capture.run()
    assert trail == ["audit"] and report.discarded == ("meta.purchase", "matomo.flush")
    assert capture.run() == []  # only once


def test_tasks_not_yet_run_are_visible_before_the_hook_runs_them():
    capture = DeferredTaskCapture()
    runner = capture.runner()
    runner.defer(lambda: None, max_cost_seconds=1, name="a.early")
    assert capture.names == ["a.early"]
    assert capture.run() == []  # nothing is held: the hook has not asked yet


def test_forgotten_and_replaced_tasks_are_not_listed_but_reported():
    capture = DeferredTaskCapture()
    runner = capture.runner()
    runner.defer(lambda: None, max_cost_seconds=1, name="matomo.flush", unique=True)
    runner.defer(lambda: None, max_cost_seconds=1, name="crm.sync")
    runner.defer(lambda: None, max_cost_seconds=1, name="matomo.flush", unique=True)
    runner.forget("crm.sync")
    runner.run()
    assert capture.names == ["matomo.flush"]
    assert capture.reports[0].forgotten == ("matomo.flush", "crm.sync")


def test_assert_deferred_matches_name_and_attributes_and_explains_a_miss():
    capture, trail = DeferredTaskCapture(), []
    a_request(capture, trail)
    assert capture.assert_deferred("audit.log", always=True).max_cost_seconds == 0.1
    with pytest.raises(AssertionError, match="not with"):
        capture.assert_deferred("meta.purchase", priority=10)
    with pytest.raises(AssertionError, match=r"no task named 'crm.sync'.*meta.purchase, audit.log"):
        capture.assert_deferred("crm.sync")
    with pytest.raises(TypeError, match="colour"):
        capture.assert_deferred("meta.purchase", colour="red")
    capture.assert_not_deferred("crm.sync")
    with pytest.raises(AssertionError):
        capture.assert_not_deferred("meta.purchase")
    with pytest.raises(AssertionError, match="expected no deferred task"):
        capture.assert_nothing_deferred()


def test_a_capture_that_saw_no_request_refuses_to_answer():
    capture = DeferredTaskCapture()
    with pytest.raises(AssertionError, match="saw no request"):
        capture.assert_nothing_deferred()
    with pytest.raises(AssertionError, match="while the capture was open"):
        _ = capture.names


def test_clear_forgets_what_was_recorded():
    capture, trail = DeferredTaskCapture(), []
    a_request(capture, trail)
    capture.clear()
    capture.assert_nothing_deferred()


def test_after_close_runners_run_as_plain_runners_and_record_nothing():
    capture, trail = DeferredTaskCapture(execute=False), []
    alive = capture.runner()
    capture.close()
    alive.defer(lambda: trail.append("alive"), max_cost_seconds=1, name="a.alive")
    late = capture.runner()
    late.defer(lambda: trail.append("late"), max_cost_seconds=1, name="a.late")
    alive.run()
    late.run()
    assert trail == ["alive", "late"]
    assert [request.report for request in capture.requests] == [None]

"""Concurrent I/O tasks (side by side on a bounded pool) and costs learned from real runs."""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyramid_deferred import current_runner, deferred_scope
from pyramid_deferred.core import DeferredTaskRunner, Outcome
from pyramid_deferred.core.costs import MARGIN, CostModel
from pyramid_deferred.testing import FakeClock

REQUEST = contextvars.ContextVar[str]("request", default="none")


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-concurrent")
    yield executor
    executor.shutdown(wait=True)


def test_concurrent_tasks_run_side_by_side(pool):
    """Each waits until all three are running at once: one after the other, they would fail."""
    together = threading.Barrier(3, timeout=5)
    runner = DeferredTaskRunner(executor=pool)
    for index in range(3):
        runner.defer(together.wait, max_cost_seconds=5, name=f"io.call{index}", concurrent=True)
    report = runner.run()
    assert sorted(report.executed) == ["io.call0", "io.call1", "io.call2"]


def test_one_raising_or_overrunning_does_not_touch_the_others(pool, logs):
    def explode() -> None:
        raise ConnectionError("the CRM is down")

    runner = DeferredTaskRunner(executor=pool)
    runner.defer(explode, max_cost_seconds=1, name="crm.sync", concurrent=True)
    runner.defer(lambda: None, max_cost_seconds=1, name="meta.purchase", concurrent=True)
    runner.defer(lambda: KeyboardInterrupt, max_cost_seconds=1, name="a.plain")
    report = runner.run()
    outcomes = {result.name: result.outcome for result in report.results}
    assert outcomes == {
        "crm.sync": Outcome.FAILED, "meta.purchase": Outcome.EXECUTED, "a.plain": Outcome.EXECUTED
    }
    [failure] = [r for r in logs.records if r.levelname == "ERROR"]
    assert "crm.sync failed" in failure.message and failure.exc_info[0] is ConnectionError


def test_each_runs_in_a_copy_of_its_request_s_context_and_may_defer_more(pool):
    seen: list[tuple[str, bool]] = []

    def call(label: str) -> None:
        seen.append((REQUEST.get(), current_runner() is runner))
        if label == "first":
            nested = current_runner()
            nested.defer(lambda: call("nested"), max_cost_seconds=1, name="io.nested", concurrent=True)

    REQUEST.set("req-42")
    with deferred_scope(DeferredTaskRunner(executor=pool)) as runner:
        runner.defer(lambda: call("first"), max_cost_seconds=1, name="io.first", concurrent=True)
        runner.defer(lambda: call("second"), max_cost_seconds=1, name="io.second", concurrent=True)
    assert sorted(seen) == [("req-42", True)] * 3  # the nested one ran in the same run


def test_without_an_executor_concurrent_tasks_run_one_after_the_other_in_priority_order():
    trail: list[str] = []
    runner = DeferredTaskRunner()
    for label, priority in (("low", 10), ("high", 100)):
        runner.defer(functools.partial(trail.append, label), max_cost_seconds=1, name=f"a.{label}",
                     priority=priority, concurrent=True)
    runner.run()
    assert trail == ["high", "low"]


def test_admitted_in_priority_order_when_the_declared_cost_fits_the_time_left():
    clock = FakeClock()
    one_thread = ThreadPoolExecutor(max_workers=1)
    runner = DeferredTaskRunner(budget_seconds=10, clock=clock, executor=one_thread)
    runner.defer(lambda: clock.advance(7), max_cost_seconds=8, name="a.first", priority=100)
    runner.defer(lambda: None, max_cost_seconds=5, name="io.too_big", priority=50, concurrent=True)
    runner.defer(lambda: None, max_cost_seconds=2, name="io.fits", priority=40, concurrent=True)
    report = runner.run()
    one_thread.shutdown()
    assert report.executed == ("a.first", "io.fits") and report.skipped == ("io.too_big",)


def test_a_task_that_waited_for_a_busy_pool_is_checked_again_when_it_starts():
    """Admitted at submission, but the pool's one thread was busy: by its start it no longer fits."""
    clock = FakeClock()
    one_thread = ThreadPoolExecutor(max_workers=1)
    runner = DeferredTaskRunner(budget_seconds=10, clock=clock, executor=one_thread)
    runner.defer(lambda: clock.advance(8), max_cost_seconds=9, name="io.slow", priority=100, concurrent=True)
    runner.defer(lambda: None, max_cost_seconds=5, name="io.late", priority=50, concurrent=True)
    report = runner.run()
    one_thread.shutdown()
    assert report.executed == ("io.slow",) and report.skipped == ("io.late",)


# --- Costs learned from real runs ---


def runs(model: CostModel, name: str, seconds: float, times: int) -> None:
    for _ in range(times):
        model.record(name, seconds)


def test_the_observed_bound_is_the_window_s_p99_with_a_margin_after_enough_runs():
    model = CostModel(window=100, min_samples=20)
    runs(model, "meta.purchase", 0.2, 19)
    assert model.bound("meta.purchase") is None
    runs(model, "meta.purchase", 0.2, 1)
    assert model.bound("meta.purchase") == pytest.approx(0.2 * MARGIN)
    runs(model, "meta.purchase", 1.0, 100)  # the window slides: old runs are forgotten
    assert model.bound("meta.purchase") == pytest.approx(1.0 * MARGIN)


@pytest.mark.parametrize(("window", "min_samples"), [(0, 1), (10, 0), (10, 11), (True, 1), (10, 2.5)])
def test_the_model_s_sizes_are_checked(window, min_samples):
    with pytest.raises(ValueError, match=r"window|min_samples"):
        CostModel(window=window, min_samples=min_samples)


def test_a_task_whose_runs_are_far_below_its_declared_cost_is_admitted_on_them(logs):
    clock = FakeClock()
    model = CostModel(min_samples=20)
    runs(model, "meta.purchase", 0.2, 20)
    runner = DeferredTaskRunner(budget_seconds=1, clock=clock, cost_model=model)
    runner.defer(lambda: clock.advance(0.2), max_cost_seconds=3.1, name="meta.purchase")
    [result] = runner.run().results
    assert (result.outcome, result.admitted_by) == (Outcome.EXECUTED, "observed")


def test_a_task_never_learned_is_tried_once_per_run_and_the_others_are_skipped_on_their_declared_cost(logs):
    clock = FakeClock()
    runner = DeferredTaskRunner(budget_seconds=1, clock=clock, cost_model=CostModel(min_samples=20))
    runner.defer(lambda: clock.advance(0.2), max_cost_seconds=3.1, name="meta.purchase", priority=100)
    runner.defer(lambda: None, max_cost_seconds=4.1, name="manago.purchase", priority=50)
    report = runner.run()
    assert [(r.name, r.outcome, r.admitted_by) for r in report.results] == [
        ("meta.purchase", Outcome.EXECUTED, "trial"), ("manago.purchase", Outcome.SKIPPED, None),
    ]
    [notice] = logs.at("NOTICE")
    assert "manago.purchase (priority 50): cost 4.1s > 0.800s of budget left" in notice


def test_the_bound_is_the_configured_quantile_of_the_window():
    model = CostModel(window=100, min_samples=100, quantile=0.9)
    for index in range(100):
        model.record("crm.sync", 3.0 if index < 10 else 0.2)  # a 10 % slow tail
    assert model.bound("crm.sync") == pytest.approx(0.2 * MARGIN)  # p90: below the tail
    strict = CostModel(window=100, min_samples=100, quantile=0.99)
    for index in range(100):
        strict.record("crm.sync", 3.0 if index < 10 else 0.2)
    assert strict.bound("crm.sync") == pytest.approx(3.0 * MARGIN)  # p99: in the tail


@pytest.mark.parametrize("quantile", [0.4, 1.01, "0.9", True])
def test_the_quantile_is_checked(quantile):
    with pytest.raises(ValueError, match="quantile"):
        CostModel(quantile=quantile)


def test_the_hard_limit_always_uses_the_declared_cost(logs):
    model = CostModel(min_samples=20)
    runs(model, "meta.purchase", 0.2, 20)
    runner = DeferredTaskRunner(budget_seconds=10, cost_model=model)
    runner.defer(lambda: None, max_cost_seconds=3.1, name="meta.purchase")
    report = runner.run(ceiling_seconds=1.0)  # the server kills the worker in 1 s
    assert report.skipped == ("meta.purchase",)
    assert "observed 0.220s" in logs.at("NOTICE")[0]


def test_runs_teach_the_model_which_then_admits():
    clock = FakeClock()
    model = CostModel(min_samples=5)
    for _ in range(5):  # a generous budget: learned from
        runner = DeferredTaskRunner(budget_seconds=10, clock=clock, cost_model=model)
        runner.defer(lambda: clock.advance(0.3), max_cost_seconds=3, name="crm.sync")
        assert runner.run().results[0].admitted_by == "declared"
    tight = DeferredTaskRunner(budget_seconds=1, clock=clock, cost_model=model)
    tight.defer(lambda: clock.advance(0.3), max_cost_seconds=3, name="crm.sync")
    assert tight.run().results[0].admitted_by == "observed"

"""The runner's semantics, each with a fake clock: the spec, corrected where it contradicts itself."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from pyramid_deferred.core import DeferredTaskRunner, Outcome
from pyramid_deferred.testing import FakeClock

CRITICAL = DeferredTaskRunner.PRIORITY_CRITICAL
NORMAL = DeferredTaskRunner.PRIORITY_NORMAL
LOW = DeferredTaskRunner.PRIORITY_LOW


def timed_task(clock: FakeClock, seconds: float, trail: list[str], label: str) -> Callable[[], None]:
    """A task that 'takes' ``seconds`` on the fake clock and records that it ran."""

    def task() -> None:
        trail.append(label)
        clock.advance(seconds)

    return task


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_runner(clock: FakeClock, budget: float = 10.0, enabled: bool = True) -> DeferredTaskRunner:
    return DeferredTaskRunner(enabled=enabled, budget_seconds=budget, clock=clock)


def test_priority_constants_match_the_spec():
    assert (CRITICAL, NORMAL, LOW) == (100, 50, 10)


def test_higher_priority_runs_first_whatever_the_defer_order(clock):
    runner, trail = make_runner(clock), []
    runner.defer(timed_task(clock, 0, trail, "low"), max_cost_seconds=1, priority=LOW, name="a.low")
    runner.defer(timed_task(clock, 0, trail, "normal"), max_cost_seconds=1, name="a.normal")
    runner.defer(
        timed_task(clock, 0, trail, "critical"), max_cost_seconds=1, priority=CRITICAL, name="a.crit"
    )
    report = runner.run()
    assert trail == ["critical", "normal", "low"]
    assert report.executed == ("a.crit", "a.normal", "a.low")


def test_equal_priorities_run_in_the_order_they_were_deferred(clock):
    runner, trail = make_runner(clock), []
    for label in "abcdefgh":
        runner.defer(timed_task(clock, 0, trail, label), max_cost_seconds=1, name=f"t.{label}")
    runner.run()
    assert trail == list("abcdefgh")


def test_budget_diagram_of_the_spec_with_the_skipped_task_costing_8(clock, logs):
    """Budget 10: costs 3/3/8/2, actual 2/1/-/1; remaining 10 -> 8 -> 7 -> 7 (skip) -> 6."""
    runner, trail = make_runner(clock, budget=10), []
    start = clock.now
    remaining_at_start: list[float] = []

    def task(label: str, seconds: float):
        inner = timed_task(clock, seconds, trail, label)

        def run() -> None:
            remaining_at_start.append(10 - (clock.now - start))
            inner()

        return run

    runner.defer(task("critical", 2), max_cost_seconds=3, priority=CRITICAL, name="meta.purchase")
    runner.defer(task("normal-1", 1), max_cost_seconds=3, priority=NORMAL, name="meta.view_content")
    runner.defer(task("normal-2", 99), max_cost_seconds=8, priority=NORMAL, name="advisable_ai.view")
    runner.defer(task("low", 1), max_cost_seconds=2, priority=LOW, name="matomo.flush")
    report = runner.run()

    assert trail == ["critical", "normal-1", "low"]
    assert remaining_at_start == [10, 8, 7]
    assert report.executed == ("meta.purchase", "meta.view_content", "matomo.flush")
    assert report.skipped == ("advisable_ai.view",)
    assert report.durations == (("meta.purchase", 2), ("meta.view_content", 1), ("matomo.flush", 1))
    assert report.elapsed_seconds == 4  # 10 - 4 = 6 remaining at the end
    [notice] = logs.at("NOTICE")
    assert "advisable_ai.view" in notice and "cost 8" in notice and "7.000s" in notice


def test_task_costing_5_with_7_remaining_runs_as_the_rule_says(clock):
    runner, trail = make_runner(clock, budget=10), []
    runner.defer(timed_task(clock, 3, trail, "first"), max_cost_seconds=3, priority=CRITICAL, name="a.first")
    runner.defer(timed_task(clock, 1, trail, "five"), max_cost_seconds=5, name="a.five")
    report = runner.run()
    assert report.executed == ("a.first", "a.five")
    assert report.skipped == ()


def test_a_cheaper_task_may_still_fit_after_a_skip(clock):
    runner, trail = make_runner(clock, budget=5), []
    runner.defer(timed_task(clock, 0, trail, "big"), max_cost_seconds=6, priority=CRITICAL, name="a.big")
    runner.defer(timed_task(clock, 1, trail, "small"), max_cost_seconds=2, priority=LOW, name="a.small")
    report = runner.run()
    assert trail == ["small"]
    assert report.skipped == ("a.big",) and report.executed == ("a.small",)


def test_cost_equal_to_remaining_budget_runs(clock):
    runner, trail = make_runner(clock, budget=4), []
    runner.defer(timed_task(clock, 1, trail, "a"), max_cost_seconds=1, priority=CRITICAL, name="a.a")
    runner.defer(timed_task(clock, 3, trail, "b"), max_cost_seconds=3, name="a.b")
    assert runner.run().executed == ("a.a", "a.b")


def test_once_the_budget_is_spent_every_remaining_task_is_skipped_even_free_ones(clock, logs):
    runner, trail = make_runner(clock, budget=2), []
    runner.defer(timed_task(clock, 2.5, trail, "slow"), max_cost_seconds=1, priority=CRITICAL, name="a.slow")
    runner.defer(timed_task(clock, 0, trail, "free"), max_cost_seconds=0, name="a.free")
    runner.defer(timed_task(clock, 0, trail, "free2"), max_cost_seconds=0, priority=LOW, name="a.free2")
    report = runner.run()
    assert trail == ["slow"]
    assert report.skipped == ("a.free", "a.free2")
    assert len(logs.at("NOTICE")) == 2


def test_budget_zero_is_unlimited_but_still_ordered(clock):
    runner, trail = make_runner(clock, budget=0), []
    runner.defer(timed_task(clock, 500, trail, "low"), max_cost_seconds=1000, priority=LOW, name="a.low")
    runner.defer(timed_task(clock, 500, trail, "crit"), max_cost_seconds=1000, priority=CRITICAL, name="a.c")
    report = runner.run()
    assert trail == ["crit", "low"]
    assert report.budget_seconds is None and report.skipped == ()


def test_a_failing_task_is_logged_with_name_and_traceback_and_the_next_one_runs(clock, logs):
    runner, trail = make_runner(clock), []

    def explode() -> None:
        raise RuntimeError("CRM said no")

    runner.defer(explode, max_cost_seconds=1, priority=CRITICAL, name="manago.purchase")
    runner.defer(timed_task(clock, 0, trail, "next"), max_cost_seconds=1, name="meta.purchase")
    report = runner.run()
    assert trail == ["next"]
    assert report.failed == ("manago.purchase",) and report.executed == ("meta.purchase",)
    [error] = [r for r in logs.records if r.levelname == "ERROR"]
    assert "manago.purchase" in error.message
    assert error.exc_info is not None and error.exc_info[0] is RuntimeError


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_propagate_after_logging_the_abandoned_tasks(clock, logs, interrupt):
    runner, trail = make_runner(clock), []

    def stop() -> None:
        raise interrupt()

    runner.defer(stop, max_cost_seconds=1, priority=CRITICAL, name="a.stop")
    runner.defer(timed_task(clock, 0, trail, "x"), max_cost_seconds=1, name="a.left1")
    runner.defer(timed_task(clock, 0, trail, "y"), max_cost_seconds=1, priority=LOW, name="a.left2")
    with pytest.raises(interrupt):
        runner.run()
    assert trail == []
    [error] = logs.at("ERROR")
    assert "a.stop" in error and "a.left1, a.left2" in error
    assert not runner.has_tasks()


def test_a_task_deferred_during_run_joins_the_same_run_in_priority_order(clock):
    runner, trail = make_runner(clock), []

    def parent() -> None:
        trail.append("parent")
        runner.defer(
            timed_task(clock, 0, trail, "child"), max_cost_seconds=1, priority=CRITICAL, name="a.child"
        )

    runner.defer(parent, max_cost_seconds=1, priority=CRITICAL, name="a.parent")
    runner.defer(timed_task(clock, 0, trail, "normal"), max_cost_seconds=1, name="a.normal")
    report = runner.run()
    assert trail == ["parent", "child", "normal"]
    assert report.executed == ("a.parent", "a.child", "a.normal")
    assert not runner.has_tasks()


def test_a_task_deferred_during_run_is_skipped_and_logged_when_the_budget_cannot_take_it(clock, logs):
    runner, trail = make_runner(clock, budget=3), []

    def parent() -> None:
        clock.advance(2)
        runner.defer(timed_task(clock, 0, trail, "child"), max_cost_seconds=2, name="a.child")

    runner.defer(parent, max_cost_seconds=2, name="a.parent")
    report = runner.run()
    assert report.skipped == ("a.child",)
    assert any("a.child" in line for line in logs.at("NOTICE"))


def test_disabled_runner_runs_everything_without_budget(clock):
    runner, trail = make_runner(clock, budget=1, enabled=False), []
    runner.defer(timed_task(clock, 5, trail, "a"), max_cost_seconds=5, priority=LOW, name="a.a")
    runner.defer(timed_task(clock, 5, trail, "b"), max_cost_seconds=5, priority=CRITICAL, name="a.b")
    report = runner.run()
    assert trail == ["b", "a"] and report.skipped == ()


def test_has_tasks_follows_the_queue(clock):
    runner = make_runner(clock)
    assert not runner.has_tasks()
    runner.defer(lambda: None, max_cost_seconds=1, name="a.a")
    assert runner.has_tasks()
    runner.run()
    assert not runner.has_tasks()


def test_run_on_an_empty_queue_is_a_silent_no_op(clock, logs):
    report = make_runner(clock).run()
    assert report.results == () and logs.records == []


def test_name_defaults_to_the_qualified_name_of_the_callable(clock):
    runner = make_runner(clock)

    def send_signal() -> None:
        pass

    runner.defer(send_signal, max_cost_seconds=1)
    [task] = runner.pending()
    assert task.name.endswith("test_name_defaults_to_the_qualified_name_of_the_callable.<locals>.send_signal")
    assert task.name == f"{__name__}.{send_signal.__qualname__}"


def test_forget_cancels_queued_tasks_by_name(clock, logs):
    runner, trail = make_runner(clock), []
    runner.defer(timed_task(clock, 0, trail, "x"), max_cost_seconds=1, name="matomo.flush")
    runner.defer(timed_task(clock, 0, trail, "y"), max_cost_seconds=1, name="meta.search")
    runner.defer(timed_task(clock, 0, trail, "z"), max_cost_seconds=1, name="matomo.flush")
    assert runner.forget("matomo.flush") == 2
    assert runner.forget("nothing.queued") == 0
    report = runner.run()
    assert trail == ["y"]
    assert report.forgotten == ("matomo.flush", "matomo.flush")
    assert any("matomo.flush" in line for line in logs.at("INFO"))


def test_unique_replaces_the_queued_task_of_the_same_name(clock):
    runner, trail = make_runner(clock), []
    runner.defer(timed_task(clock, 0, trail, "first"), max_cost_seconds=1, name="matomo.flush", unique=True)
    runner.defer(timed_task(clock, 0, trail, "other"), max_cost_seconds=1, name="meta.search")
    runner.defer(timed_task(clock, 0, trail, "last"), max_cost_seconds=1, name="matomo.flush", unique=True)
    report = runner.run()
    assert trail == ["other", "last"]
    assert report.forgotten == ("matomo.flush",)


def test_failed_request_discards_tasks_unless_deferred_with_always(clock, logs):
    runner, trail = make_runner(clock), []
    runner.defer(timed_task(clock, 0, trail, "purchase"), max_cost_seconds=1, name="meta.purchase")
    runner.defer(timed_task(clock, 0, trail, "audit"), max_cost_seconds=1, name="audit.log", always=True)
    report = runner.run(request_failed=True)
    assert trail == ["audit"]
    assert report.discarded == ("meta.purchase",)
    assert any("meta.purchase" in line and "Discarded" in line for line in logs.at("INFO"))


def test_a_task_that_overruns_its_declared_cost_is_logged_with_both_figures(clock, logs):
    runner, trail = make_runner(clock), []
    runner.defer(timed_task(clock, 2.5, trail, "slow"), max_cost_seconds=1, name="meta.purchase")
    runner.run()
    [warning] = logs.at("WARNING")
    assert "meta.purchase" in warning and "2.500s" in warning and "declared 1s" in warning


@pytest.mark.parametrize(
    ("budget", "ceiling", "effective"),
    [
        (10, 30, 10),  # tighten below the hard limit
        (40, 25, 25),  # the hard limit's remainder is tighter
        (10, None, 10),  # no hard limit: the budget alone
        (0, 25, 25),  # unlimited budget: what is left of the hard limit governs
        (0, None, None),  # fully unconstrained
    ],
)
def test_effective_budget_follows_the_time_limit_table(clock, budget, ceiling, effective):
    runner = make_runner(clock, budget=budget)
    runner.defer(lambda: None, max_cost_seconds=0, name="a.a")
    assert runner.run(ceiling_seconds=ceiling).budget_seconds == effective


def test_an_exhausted_ceiling_skips_everything(clock):
    runner = make_runner(clock, budget=0)
    runner.defer(lambda: None, max_cost_seconds=0, name="a.a")
    report = runner.run(ceiling_seconds=-3)
    assert report.skipped == ("a.a",)


def test_calling_run_from_a_task_fails_that_task_only(clock):
    runner, trail = make_runner(clock), []
    runner.defer(lambda: runner.run(), max_cost_seconds=1, priority=CRITICAL, name="a.nested")
    runner.defer(timed_task(clock, 0, trail, "after"), max_cost_seconds=1, name="a.after")
    report = runner.run()
    assert report.failed == ("a.nested",) and trail == ["after"]


def test_report_orders_results_as_decided(clock):
    runner = make_runner(clock, budget=1)
    runner.defer(lambda: None, max_cost_seconds=5, priority=CRITICAL, name="a.skip")
    runner.defer(lambda: None, max_cost_seconds=0.5, name="a.run")
    report = runner.run()
    assert [(r.name, r.outcome) for r in report.results] == [
        ("a.skip", Outcome.SKIPPED),
        ("a.run", Outcome.EXECUTED),
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "parameter"),
    [
        ({"task": "not callable"}, TypeError, "task"),
        ({"task": None}, TypeError, "task"),
        ({"max_cost_seconds": -1}, ValueError, "max_cost_seconds"),
        ({"max_cost_seconds": math.nan}, ValueError, "max_cost_seconds"),
        ({"max_cost_seconds": math.inf}, ValueError, "max_cost_seconds"),
        ({"max_cost_seconds": "3"}, TypeError, "max_cost_seconds"),
        ({"max_cost_seconds": True}, TypeError, "max_cost_seconds"),
        ({"max_cost_seconds": None}, TypeError, "max_cost_seconds"),
        ({"priority": 1.5}, TypeError, "priority"),
        ({"priority": "high"}, TypeError, "priority"),
        ({"priority": True}, TypeError, "priority"),
        ({"name": ""}, ValueError, "name"),
        ({"name": "   "}, ValueError, "name"),
        ({"name": "meta.purchase\nERROR forged line"}, ValueError, "name"),
        ({"name": 42}, TypeError, "name"),
        ({"always": "yes"}, TypeError, "always"),
        ({"unique": 1}, TypeError, "unique"),
    ],
)
def test_bad_arguments_fail_at_the_defer_call_naming_the_parameter(clock, kwargs, error, parameter):
    runner = make_runner(clock)
    arguments = {"task": lambda: None, "max_cost_seconds": 1, "name": "a.a", **kwargs}
    task = arguments.pop("task")
    with pytest.raises(error, match=parameter):
        runner.defer(task, **arguments)
    assert not runner.has_tasks()


@pytest.mark.parametrize(
    ("budget", "error"), [(-1, ValueError), (math.nan, ValueError), ("10", TypeError), (True, TypeError)]
)
def test_bad_budget_fails_at_construction_naming_it(budget, error):
    with pytest.raises(error, match="budget_seconds"):
        DeferredTaskRunner(budget_seconds=budget)


def test_a_task_forgotten_or_replaced_during_the_run_is_in_that_runs_report(clock):
    runner, trail = make_runner(clock), []

    def first() -> None:
        runner.forget("crm.sync")
        flush = timed_task(clock, 0, trail, "flush-2")
        runner.defer(flush, max_cost_seconds=1, name="matomo.flush", unique=True)

    runner.defer(first, max_cost_seconds=1, priority=CRITICAL, name="a.first")
    runner.defer(timed_task(clock, 0, trail, "sync"), max_cost_seconds=1, name="crm.sync")
    runner.defer(timed_task(clock, 0, trail, "flush-1"), max_cost_seconds=1, name="matomo.flush")
    report = runner.run()
    assert trail == ["flush-2"]
    assert report.forgotten == ("crm.sync", "matomo.flush")
    assert runner.run().results == ()


def test_the_task_in_progress_is_visible_to_other_threads_and_cleared_after():
    runner = DeferredTaskRunner()
    seen: list[object] = []
    runner.defer(lambda: seen.append(runner.current_task), max_cost_seconds=1, name="a.watched")
    runner.defer(lambda: seen.append(runner.current_task), max_cost_seconds=1, name="a.next")
    assert runner.current_task is None
    runner.run()
    assert [getattr(task, "name", None) for task in seen] == ["a.watched", "a.next"]
    assert runner.current_task is None


@pytest.mark.parametrize(
    ("kwargs", "error", "parameter"),
    [
        ({"max_cost_seconds": math.nan}, ValueError, "max_cost_seconds"),
        ({"max_cost_seconds": -0.5}, ValueError, "max_cost_seconds"),
        ({"priority": 5.0}, TypeError, "priority"),
        ({"always": 1}, TypeError, "always"),
        ({"task": 42}, TypeError, "task"),
    ],
)
def test_a_name_seen_before_does_not_let_other_bad_arguments_through(clock, kwargs, error, parameter):
    runner = make_runner(clock)
    runner.defer(lambda: None, max_cost_seconds=1, name="seen.before")  # validated and remembered
    arguments = {"task": lambda: None, "max_cost_seconds": 1, "name": "seen.before", **kwargs}
    task = arguments.pop("task")
    with pytest.raises(error, match=parameter):
        runner.defer(task, **arguments)
    assert len(runner.pending()) == 1


def test_subclasses_of_int_and_float_are_accepted_through_full_validation(clock):
    """numpy.float64 is a float subclass, an IntEnum an int subclass: both take the slow path."""
    runner = make_runner(clock)

    class Seconds(float):
        pass

    class Priority(int):
        pass

    runner.defer(lambda: None, max_cost_seconds=Seconds(0.5), priority=Priority(70), name="a.odd")
    [task] = runner.pending()
    assert task.max_cost_seconds == 0.5 and task.priority == 70

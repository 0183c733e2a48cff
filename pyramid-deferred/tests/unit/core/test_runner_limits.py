"""What a task cannot do to its worker: raise anything, defer without end, flood the log, or
queue work after its request is over."""

from __future__ import annotations

import threading

import pytest

from pyramid_deferred.core import DeferredTaskRunner, Outcome
from pyramid_deferred.core.runner import OverrunWarnings
from pyramid_deferred.testing import FakeClock


class CustomBaseError(BaseException):
    pass


def in_a_thread(function):
    """Run ``function`` on a thread that is not the main one (as waitress and gthread do)."""
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(function()))
    thread.start()
    thread.join(timeout=10)
    return outcome[0]


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit, CustomBaseError])
def test_off_the_main_thread_whatever_a_task_raises_is_its_own_failure(error, logs):
    trail: list[str] = []

    def raising() -> None:
        raise error("from the task's own code")

    runner = DeferredTaskRunner()
    runner.defer(raising, max_cost_seconds=1, name="a.raising", priority=100)
    runner.defer(lambda: trail.append("next"), max_cost_seconds=1, name="a.next")
    report = in_a_thread(runner.run)
    assert [(r.name, r.outcome) for r in report.results] == [
        ("a.raising", Outcome.FAILED), ("a.next", Outcome.EXECUTED)
    ]
    assert trail == ["next"]
    [failure] = [r for r in logs.records if r.levelname == "ERROR"]
    assert "a.raising failed" in failure.message and failure.exc_info[0] is error


@pytest.mark.parametrize("error", [GeneratorExit, CustomBaseError])
def test_on_the_main_thread_a_non_signal_base_exception_is_the_task_s_failure(error):
    runner = DeferredTaskRunner()
    runner.defer(lambda: (_ for _ in ()).throw(error()), max_cost_seconds=1, name="a.raising")
    assert runner.run().failed == ("a.raising",)


@pytest.mark.parametrize("signal_error", [KeyboardInterrupt, SystemExit])
def test_on_the_main_thread_ctrl_c_or_exit_stops_the_run_naming_what_is_abandoned(signal_error, logs):
    def interrupted() -> None:
        raise signal_error()

    runner = DeferredTaskRunner()
    runner.defer(interrupted, max_cost_seconds=1, name="a.interrupted", priority=100)
    runner.defer(lambda: None, max_cost_seconds=1, name="a.abandoned")
    with pytest.raises(signal_error):
        runner.run()
    [line] = logs.at("ERROR")
    assert "a.interrupted was interrupted" in line and "a.abandoned" in line


def test_a_task_that_keeps_deferring_itself_stops_at_max_tasks_with_one_warning(logs):
    runner = DeferredTaskRunner(budget_seconds=0, max_tasks=50)
    ran: list[int] = []

    def again() -> None:
        ran.append(1)
        runner.defer(again, max_cost_seconds=0, name="a.again")

    runner.defer(again, max_cost_seconds=0, name="a.again")
    report = runner.run()
    assert len(ran) == 50 and len(report.results) == 50  # bookkeeping bounded by the cap
    assert report.refused == 1 and "50 executed, 1 refused" in str(report)
    [warning] = [line for line in logs.at("WARNING") if "Refused" in line]
    assert "a.again" in warning and "50 tasks" in warning


def test_the_cap_counts_per_run_and_starts_again_with_the_next_one():
    runner = DeferredTaskRunner(max_tasks=2)
    for name in ("a.one", "a.two", "a.three"):
        runner.defer(lambda: None, max_cost_seconds=1, name=name)
    assert runner.run().refused == 1
    runner.defer(lambda: None, max_cost_seconds=1, name="a.four")
    assert runner.run().executed == ("a.four",)


@pytest.mark.parametrize("max_tasks", [0, -1, 1.5, True, None])
def test_max_tasks_must_be_a_positive_int(max_tasks):
    with pytest.raises((TypeError, ValueError), match="max_tasks"):
        DeferredTaskRunner(max_tasks=max_tasks)


def test_overrun_warnings_are_limited_per_task_name_and_say_how_many_were_held_back(logs):
    clock = FakeClock()
    warnings = OverrunWarnings(interval_seconds=60)

    def overrun() -> None:
        clock.advance(2)

    for _ in range(5):  # five requests, ten seconds apart: within one interval
        runner = DeferredTaskRunner(clock=clock, overrun_warnings=warnings, budget_seconds=0)
        runner.defer(overrun, max_cost_seconds=1, name="a.slow")
        runner.defer(overrun, max_cost_seconds=1, name="b.slow")
        runner.run()
        clock.advance(8)
    assert len([w for w in logs.at("WARNING") if "overran" in w]) == 2  # one per name
    clock.advance(60)
    runner = DeferredTaskRunner(clock=clock, overrun_warnings=warnings, budget_seconds=0)
    runner.defer(overrun, max_cost_seconds=1, name="a.slow")
    runner.run()
    assert "(4 more overruns of it since the last warning)" in logs.at("WARNING")[-1]


def test_a_closed_runner_refuses_defer_and_says_what_to_do():
    runner = DeferredTaskRunner()
    runner.run()
    runner.close()
    with pytest.raises(RuntimeError, match="deferred_scope"):
        runner.defer(lambda: None, max_cost_seconds=1, name="a.too_late")

"""The watchdog names a task far past its cost (once, with its stack), one past the hard limit
(at ERROR, and asks for a replacement), and knows which thread runs each batch."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pyramid_deferred.batch import RequestBatch
from pyramid_deferred.core import DeferredTaskRunner
from pyramid_deferred.testing import FakeClock
from pyramid_deferred.watchdog import Watchdog

HOUR = 3600.0


class Blocked:
    """A batch running on a thread, its first task blocked until released."""

    def __init__(self, watchdog: Watchdog, clock: FakeClock, *, cost: float, hard_limit: float = 0.0) -> None:
        self.release = threading.Event()
        self.running = threading.Event()
        runner = DeferredTaskRunner(clock=clock, budget_seconds=0)
        runner.defer(self.stuck_in_a_call, max_cost_seconds=cost, name="crm.sync", priority=100)
        runner.defer(lambda: None, max_cost_seconds=cost, name="crm.after")
        self.batch = RequestBatch(runner, hard_limit_seconds=hard_limit, clock=clock, request_id="req-stuck",
                                  watchdog=watchdog, live=set())
        self.batch.schedule(copy_context=False)  # the response left: the app's live batches hold it
        self.thread = threading.Thread(target=self.batch.run_once, name="server-thread-1")
        self.thread.start()
        assert self.running.wait(5)

    def stuck_in_a_call(self) -> None:
        self.running.set()
        self.release.wait(10)

    def finish(self) -> None:
        self.release.set()
        self.thread.join(5)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def watchdog(clock) -> Iterator[Watchdog]:
    dog = Watchdog(clock=clock, interval_seconds=HOUR)  # the test calls check() itself
    yield dog
    dog.stop()


def test_a_task_far_past_its_cost_is_named_once_with_its_request_and_stack(watchdog, clock, logs):
    blocked = Blocked(watchdog, clock, cost=1.0)
    try:
        clock.advance(1.5)
        watchdog.check()
        assert not logs.matching("still running") and watchdog.overrunning == 1  # not far past yet
        clock.advance(1.0)
        watchdog.check()
        watchdog.check()
    finally:
        blocked.finish()
    [warning] = logs.matching("still running")
    assert warning.levelname == "WARNING"
    assert "crm.sync is still running after 2.5s (declared 1.0s) on thread server-thread-1" in (
        warning.message
    )
    assert "stuck_in_a_call" in warning.message and warning.request_id == "req-stuck"


def test_past_the_hard_limit_it_is_an_error_and_the_worker_asks_to_be_replaced(watchdog, clock, logs):
    asked: list[str] = []
    watchdog.on_stuck = lambda batch: asked.append(batch.request_id)
    blocked = Blocked(watchdog, clock, cost=1.0, hard_limit=5.0)
    try:
        clock.advance(6.0)
        watchdog.check()
        watchdog.check()
    finally:
        blocked.finish()
    [error] = logs.at("ERROR")
    assert "crm.sync is still running 1.0s past the hard limit" in error and "crm.after" in error
    assert asked == ["req-stuck"]


def test_the_gauge_listeners_hear_how_many_tasks_run_past_their_cost(watchdog, clock):
    heard: list[int] = []
    watchdog.listeners.append(heard.append)
    blocked = Blocked(watchdog, clock, cost=1.0)
    try:
        watchdog.check()
        clock.advance(2.0)
        watchdog.check()
    finally:
        blocked.finish()
    watchdog.check()
    assert heard == [0, 1, 0]


def test_it_knows_which_thread_runs_a_batch_until_the_batch_ends(watchdog, clock):
    blocked = Blocked(watchdog, clock, cost=1.0)
    try:
        assert watchdog.thread_of(blocked.batch) is blocked.thread
    finally:
        blocked.finish()
    assert watchdog.thread_of(blocked.batch) is None

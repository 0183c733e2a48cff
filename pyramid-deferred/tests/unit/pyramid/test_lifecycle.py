"""When the process stops: unfinished batches get the grace, then each is decided once, wherever
it runs (inline on a server thread, on the hand-off worker, waiting for its trigger, tasks in
flight on the concurrent pool): durable tasks spill, the rest are named, the observers get one
report that balances. SIGTERM begins the grace where nobody else handles it."""

from __future__ import annotations

import atexit
import signal
import threading
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyramid_deferred import lifecycle
from pyramid_deferred import testing as fx
from pyramid_deferred.batch import RequestBatch, Trigger
from pyramid_deferred.core import DeferredTaskRunner, RunReport
from pyramid_deferred.core.handoff import HandOffWorker
from pyramid_deferred.durable import SpillOver, durable
from pyramid_deferred.lifecycle import ProcessStop, _exit_on_sigterm, install_shutdown
from pyramid_deferred.testing import TEST_CODEC, FakeSpiller, MemoryClaims
from pyramid_deferred.watchdog import Watchdog

HOUR = 3600.0


@pytest.fixture
def registered(monkeypatch):
    callbacks: list[object] = []
    monkeypatch.setattr(atexit, "register", callbacks.append)
    return callbacks


@pytest.fixture
def sigterm():
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, previous)


class App:
    """What an app's hook holds for a stop: the hand-off worker, the watchdog, the live batches,
    a spill-over in memory, and every report its observers received."""

    def __init__(self, *, grace: float = 0.0, executor: ThreadPoolExecutor | None = None) -> None:
        self.worker = HandOffWorker(threads=1, grace_seconds=grace)
        self.watchdog = Watchdog(interval_seconds=HOUR)
        self.live: set[RequestBatch] = set()
        self.stop = ProcessStop(self.worker, self.watchdog, self.live, grace_seconds=grace)
        self.spiller = FakeSpiller()
        self.spill_over = SpillOver(self.spiller, MemoryClaims(), codec=TEST_CODEC)
        self.reports: list[RunReport] = []
        self.executor = executor
        self.release = threading.Event()
        self.running = threading.Event()

    def blocking_task(self) -> None:
        self.running.set()
        self.release.wait(10)

    def batch(self, request_id: str, *, blocked: bool = True, durables: int = 2) -> RequestBatch:
        runner = DeferredTaskRunner(budget_seconds=0, executor=self.executor)
        if blocked:
            runner.defer(self.blocking_task, max_cost_seconds=1, priority=100, name="probe.slow")
        for index in range(durables):
            runner.defer(durable(fx.record_durable, request_id, index), max_cost_seconds=1,
                         name=f"meta.purchase.{index}")
        runner.defer(lambda: None, max_cost_seconds=1, name="plain.flush")
        batch = RequestBatch(runner, request_id=request_id, spill_over=self.spill_over, live=self.live,
                             observers=(self.observe,),
                             watchdog=self.watchdog)
        batch.schedule(copy_context=True)  # the response left: the batch is scheduled
        return batch

    def run_inline(self, batch: RequestBatch) -> threading.Thread:
        """The batch runs inline on a server thread (a waitress thread in close()), blocked in its
        first task."""
        thread = threading.Thread(target=batch.run_once, args=(Trigger.CLOSE,), name="waitress-1")
        thread.start()
        assert self.running.wait(5)
        return thread

    def observe(self, batch: RequestBatch, report: RunReport) -> None:
        self.reports.append(report)

    def spilled(self) -> list[tuple[str, str, str]]:
        return [(task.request_id, task.name, task.reason) for task in self.spiller.sent]


@pytest.fixture
def app() -> Iterator[App]:
    made = App()
    yield made
    made.release.set()
    made.worker.shutdown(grace_seconds=1)
    made.watchdog.stop()


def test_a_batch_running_inline_at_the_stop_spills_its_queued_durable_tasks_with_one_report(app, logs):
    batch = app.batch("req-inline")
    thread = app.run_inline(batch)

    lost = app.stop.give_up()

    assert app.spilled() == [("req-inline", "meta.purchase.0", "shutdown"),
                             ("req-inline", "meta.purchase.1", "shutdown")]
    assert lost == ["plain.flush", "probe.slow (still running)"]
    [report] = app.reports
    assert report.spilled == ("meta.purchase.0", "meta.purchase.1") and report.balanced
    assert set(report.discarded) == {"plain.flush", "probe.slow"}
    [error] = logs.at("ERROR")
    assert "while a batch runs on thread waitress-1: abandoning 2 deferred task(s)" in error
    app.release.set()
    thread.join(5)
    assert app.reports == [report]  # the run, ending after the stop, reports nothing more
    assert fx.DURABLE_CALLS.count(("req-inline", 0)) == 0  # never run here: it was spilled
    assert app.live == set()


def test_a_batch_still_waiting_for_its_trigger_is_decided_and_never_runs_afterwards(app, logs):
    batch = app.batch("req-waiting", blocked=False)

    assert app.stop.give_up() == ["plain.flush"]
    assert "while a batch waits for its trigger" in logs.at("ERROR")[0]
    assert [name for _, name, _ in app.spilled()] == ["meta.purchase.0", "meta.purchase.1"]
    assert batch.run_once(Trigger.CLOSE) is None  # the body's close() comes too late: nothing runs
    [report] = app.reports
    assert report.balanced and report.deferred == 3


def test_the_stop_decides_each_batch_once_however_many_times_it_is_asked(app):
    app.batch("req-once", blocked=False)
    app.stop.give_up()
    assert app.stop.give_up() == []
    app.stop.finish()
    assert len(app.reports) == 1 and len(app.spiller.sent) == 2


def test_at_exit_a_batch_that_ends_within_the_grace_runs_everything_and_nothing_spills():
    app = App(grace=5.0)
    batch = app.batch("req-ends")
    thread = app.run_inline(batch)
    threading.Timer(0.2, app.release.set).start()  # the slow task ends while the exit waits

    app.stop.finish()

    thread.join(5)
    assert app.spiller.sent == []
    [report] = app.reports
    assert set(report.executed) == {"probe.slow", "meta.purchase.0", "meta.purchase.1", "plain.flush"}


def test_a_sigterm_starts_the_grace_and_a_timer_gives_up_while_the_server_thread_is_still_busy(app):
    batch = app.batch("req-timer")
    thread = app.run_inline(batch)
    app.stop.grace_seconds = 0.2

    app.stop.begin()

    assert app.stop.deadline is not None
    thread.join(0.2)
    assert thread.is_alive()  # the task still blocks its thread...
    for _ in range(100):  # ...but within a bounded wait the timer has decided the batch
        if app.reports:
            break
        threading.Event().wait(0.05)
    assert [name for _, name, _ in app.spilled()] == ["meta.purchase.0", "meta.purchase.1"]


def test_a_server_that_kills_sooner_shortens_the_grace_never_lengthens_it(app):
    app.stop.grace_seconds = 10.0
    app.stop.begin(30.0)
    first = app.stop.deadline
    app.stop.begin(2.0)
    assert first is not None and app.stop.deadline is not None
    assert app.stop.deadline < first
    app.stop.give_up()


def test_a_batch_queued_on_the_hand_off_worker_and_one_inline_are_both_decided(app, logs):
    inline = app.batch("req-inline")
    app.run_inline(inline)
    queued = app.batch("req-queued", blocked=False)
    gate = threading.Event()
    blocker = RequestBatch(DeferredTaskRunner(), request_id="req-blocker")
    blocker.runner.defer(lambda: gate.wait(10), max_cost_seconds=1, name="handoff.busy")
    assert app.worker.submit(blocker) and app.worker.submit(queued)

    app.stop.give_up()
    gate.set()

    spilled_by = {request_id for request_id, _, _ in app.spilled()}
    assert spilled_by == {"req-inline", "req-queued"}
    grace_line = next(line for line in logs.at("ERROR") if "grace period" in line)
    assert "plain.flush" in grace_line  # the hand-off worker names its own in one line


def test_concurrent_tasks_in_flight_at_the_stop_are_decided_and_the_report_balances():
    with ThreadPoolExecutor(max_workers=1) as pool:
        app = App(executor=pool)
        runner = DeferredTaskRunner(budget_seconds=0, executor=pool)
        runner.defer(app.blocking_task, max_cost_seconds=1, name="http.slow", concurrent=True)
        runner.defer(durable(fx.record_durable, "req-pool", 9), max_cost_seconds=1, name="meta.purchase",
                     concurrent=True)  # waits for the pool's one thread
        batch = RequestBatch(runner, request_id="req-pool", spill_over=app.spill_over, live=app.live,
                             observers=(app.observe,))
        batch.schedule(copy_context=True)
        thread = threading.Thread(target=batch.run_once)
        thread.start()
        assert app.running.wait(5)

        lost = app.stop.give_up()
        app.release.set()
        thread.join(5)

    assert lost == ["http.slow (still running)"]
    assert [name for _, name, _ in app.spilled()] == ["meta.purchase"]
    assert ("req-pool", 9) not in fx.DURABLE_CALLS  # the pool started it after the stop: not run
    [report] = app.reports
    assert report.balanced and report.spilled == ("meta.purchase",) and report.discarded == ("http.slow",)


def test_at_exit_the_stop_finishes_and_an_unhandled_sigterm_begins_it_then_exits(
    registered, sigterm, app, monkeypatch
):
    monkeypatch.setattr(lifecycle, "_stops", weakref.WeakSet([app.stop]))  # not every app of the suite
    install_shutdown(app.stop, exit_on_sigterm=True)
    assert registered == [app.stop.finish]
    assert signal.getsignal(signal.SIGTERM) is _exit_on_sigterm
    app.stop.grace_seconds = HOUR  # the timer must not fire during the test
    with pytest.raises(SystemExit) as exited:
        _exit_on_sigterm(signal.SIGTERM, None)
    assert exited.value.code == 128 + signal.SIGTERM
    assert app.stop.deadline is not None  # the grace began
    app.stop.give_up()


def test_a_server_s_own_sigterm_handler_is_left_alone(registered, sigterm, app):
    def servers_handler(signum, frame):
        pass

    signal.signal(signal.SIGTERM, servers_handler)
    install_shutdown(app.stop, exit_on_sigterm=True)
    assert signal.getsignal(signal.SIGTERM) is servers_handler


def test_the_setting_off_leaves_sigterm_alone(registered, sigterm, app):
    install_shutdown(app.stop, exit_on_sigterm=False)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_stop_racing_the_run_decides_each_task_exactly_once():
    """The rare double count: a task the run pops just as the stop takes the queue. Each task
    must be in the report once, whoever took it (200 races at varied moments, bounded)."""
    names = [f"t{index}" for index in range(30)]
    for attempt in range(200):
        app = App()
        runner = DeferredTaskRunner(budget_seconds=0)
        for index, name in enumerate(names):
            task = durable(fx.record_durable, "race", attempt, index) if index % 2 else (lambda: None)
            runner.defer(task, max_cost_seconds=1, name=name)
        batch = RequestBatch(runner, request_id=f"race-{attempt}", spill_over=app.spill_over, live=app.live,
                             observers=(app.observe,))
        batch.schedule(copy_context=True)
        thread = threading.Thread(target=batch.run_once)
        thread.start()
        threading.Event().wait(attempt % 7 * 0.00005)
        batch.abandon()
        thread.join(5)
        [report] = app.reports
        assert report.balanced and sorted(result.name for result in report.results) == sorted(names)
        ran_here = {call[2] for call in fx.DURABLE_CALLS if call[:2] == ("race", attempt)}
        spilled = {int(task.name[1:]) for task in app.spiller.sent}
        assert len(ran_here & spilled) <= 1  # both only for the one task running at the stop


def test_the_exit_waits_for_the_timer_still_spilling_instead_of_ending_the_process_under_it(app):
    """The timer gives up at the deadline on its own (daemon) thread; the interpreter's exit
    reaching give_up() meanwhile must wait for it, or the process ends mid-spill."""
    app.batch("req-slow-spill", blocked=False)
    spilling, release = threading.Event(), threading.Event()
    send = app.spiller.send

    def slow_send(message, **kwargs):
        spilling.set()
        release.wait(5)
        send(message, **kwargs)

    app.spiller.send = slow_send
    timer = threading.Thread(target=app.stop.give_up, name="deferred-stop")
    timer.start()
    assert spilling.wait(5)
    exit_done = threading.Event()

    def exit_gives_up() -> None:
        app.stop.give_up()
        exit_done.set()

    exiting = threading.Thread(target=exit_gives_up)
    exiting.start()
    assert not exit_done.wait(0.2)  # still waiting for the spill in progress
    release.set()
    assert exit_done.wait(5) and len(app.spiller.sent) == 2  # both durable tasks spilled first
    timer.join(5)
    exiting.join(5)

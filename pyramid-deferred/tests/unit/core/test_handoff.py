"""The hand-off worker: bounded, back-pressure instead of drops, drained on shutdown."""

from __future__ import annotations

import threading

import pytest

from pyramid_deferred.core.handoff import HandOffWorker

WAIT = 5.0  # generous bound for thread hand-overs; never a timing assertion


class FakeBatch:
    def __init__(self, names: list[str], gate: threading.Event | None = None) -> None:
        self.names = names
        self.gate = gate
        self.started = threading.Event()
        self.ran = threading.Event()
        self.thread: str | None = None

    def run_once(self) -> None:
        self.thread = threading.current_thread().name
        self.started.set()
        if self.gate is not None:
            self.gate.wait(WAIT)
        self.names = []
        self.ran.set()

    def pending_names(self) -> list[str]:
        return list(self.names)


@pytest.fixture
def worker():
    workers: list[HandOffWorker] = []

    def make(**kwargs) -> HandOffWorker:
        workers.append(HandOffWorker(**kwargs))
        return workers[-1]

    yield make
    for w in workers:
        w.shutdown(grace_seconds=0)


def test_a_submitted_batch_runs_on_a_worker_thread(worker):
    batch = FakeBatch(["a.task"])
    assert worker().submit(batch) is True
    assert batch.ran.wait(WAIT)
    assert batch.thread is not None and batch.thread.startswith("deferred-task-")
    assert batch.thread != threading.current_thread().name


def test_a_full_queue_refuses_so_the_caller_runs_the_batch_itself(worker):
    w = worker(threads=1, queue_size=1)
    gate = threading.Event()
    busy = FakeBatch(["a.busy"], gate)
    assert w.submit(busy) and busy.started.wait(WAIT)
    assert w.submit(FakeBatch(["a.queued"])) is True
    assert w.queue_length == 1
    assert w.submit(FakeBatch(["a.refused"])) is False
    gate.set()


def test_shutdown_drains_queued_batches_within_the_grace_period(worker):
    w = worker(threads=1, queue_size=10)
    batches = [FakeBatch([f"a.{i}"]) for i in range(5)]
    for batch in batches:
        assert w.submit(batch)
    assert w.shutdown(grace_seconds=WAIT) == []
    assert all(batch.ran.is_set() for batch in batches)


def test_what_cannot_run_within_the_grace_period_is_logged_by_name(worker, logs):
    w = worker(threads=1, queue_size=10)
    gate = threading.Event()
    stuck = FakeBatch(["meta.purchase", "matomo.flush"], gate)
    assert w.submit(stuck) and stuck.started.wait(WAIT)
    assert w.submit(FakeBatch(["advisable_ai.view"]))
    try:
        unrun = w.shutdown(grace_seconds=0.05)
    finally:
        gate.set()
    assert unrun == ["meta.purchase", "matomo.flush", "advisable_ai.view"]
    [error] = logs.at("ERROR")
    assert "meta.purchase, matomo.flush, advisable_ai.view" in error


def test_nothing_is_accepted_after_shutdown(worker):
    w = worker()
    w.shutdown(grace_seconds=0)
    assert w.submit(FakeBatch(["a.late"])) is False


def test_a_crashing_batch_does_not_kill_its_thread(worker, logs):
    class Crashing(FakeBatch):
        def run_once(self) -> None:
            raise SystemExit("task called sys.exit")

    w = worker(threads=1)
    assert w.submit(Crashing(["a.crash"]))
    after = FakeBatch(["a.after"])
    assert w.submit(after) and after.ran.wait(WAIT)
    assert any("crashed" in line for line in logs.at("ERROR"))


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"threads": 0}, "threads"),
        ({"queue_size": 0}, "queue_size"),
        ({"grace_seconds": -1}, "grace_seconds"),
    ],
)
def test_bad_sizes_fail_at_construction_naming_the_parameter(kwargs, parameter):
    with pytest.raises(ValueError, match=parameter):
        HandOffWorker(**kwargs)


def test_queue_listeners_hear_every_change_of_the_queue_length(worker):
    w = worker(threads=1, queue_size=5)
    lengths: list[int] = []
    w.add_queue_listener(lengths.append)
    gate = threading.Event()
    busy = FakeBatch(["a.busy"], gate)
    assert w.submit(busy) and busy.started.wait(WAIT)
    queued = FakeBatch(["a.queued"])
    assert w.submit(queued)
    gate.set()
    assert queued.ran.wait(WAIT)
    assert lengths[-1] == 0 and 1 in lengths

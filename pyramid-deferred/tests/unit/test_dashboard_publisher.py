"""The shared page's publisher, with its clocks passed in and its thread left out (the tests call
``flush()``): runs go to Redis in batches, never on the run's thread; a slow or dead Redis costs
dropped (counted) runs and one WARNING per outage, never a wait or an exception."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pyramid_deferred.batch import RequestBatch
from pyramid_deferred.core import DeferredTaskRunner, Outcome, RunReport, TaskResult
from pyramid_deferred.dashboard.outage import Outage, describe
from pyramid_deferred.dashboard.publisher import (
    HEARTBEAT_SECONDS,
    RETRY_MAX_SECONDS,
    RETRY_MIN_SECONDS,
    Publisher,
)
from pyramid_deferred.dashboard.recorder import Recorder, RunView
from pyramid_deferred.dashboard.redis_store import Publication
from pyramid_deferred.dashboard.wire import MAX_TASKS_PER_RUN, WorkerMeta, decode_meta, decode_run
from pyramid_deferred.testing import FakeClock

PASSWORD = "pa55-in-the-url"


class FakeStore:
    """Records each write (one write is one pipelined round trip in the real store); ``failing``
    makes writes raise as a dead Redis does; ``gate`` holds a write until it is set."""

    def __init__(self) -> None:
        self.writes: list[Publication] = []
        self.failing: Exception | None = None
        self.fresh = False
        self.gate: threading.Event | None = None
        self.writing = threading.Event()

    def write(self, publication: Publication) -> bool:
        self.writing.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.failing is not None:
            raise self.failing
        self.writes.append(publication)
        return self.fresh


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(recent_runs=50, max_task_names=3, host="web-1")


@pytest.fixture
def publisher(store: FakeStore, recorder: Recorder, clock: FakeClock) -> Iterator[Publisher]:
    publisher = Publisher(store, recorder, Outage(clock=clock), clock=clock, wall=lambda: 1.8e9 + clock.now,
                          getpid=lambda: 4242, max_pending=5, start_thread=False)
    recorder.sink = publisher.submit
    yield publisher
    publisher.close()


def run(recorder: Recorder, *results: TaskResult) -> None:
    """What the observer does after a request's run."""
    recorder.observe(RequestBatch(DeferredTaskRunner(), request_id="rid-1"), RunReport(results))


def meta(publication: Publication) -> WorkerMeta:
    decoded = decode_meta(publication.meta)
    assert decoded is not None
    return decoded


def run_of(raw: bytes) -> RunView:
    decoded = decode_run(raw)
    assert decoded is not None
    return decoded


def executed(name: str, seconds: float = 0.01) -> TaskResult:
    return TaskResult(name, 50, 1.0, Outcome.EXECUTED, seconds)


def test_runs_wait_for_the_flush_and_go_in_one_write(publisher, store, recorder):
    for _ in range(3):
        run(recorder, executed("meta.purchase"), executed("crm.sync"))

    assert store.writes == [], "the run's thread only queues"
    assert publisher.pending == 3

    assert publisher.flush()

    [write] = store.writes
    assert [run_of(raw).pid for raw in write.runs] == [os.getpid()] * 3, "each run with its pid"
    assert set(write.names) == {"meta.purchase", "crm.sync"}
    assert write.worker.pid == 4242 and write.worker.host == "web-1"
    assert meta(write).total_runs == 3 and meta(write).published == 3
    assert publisher.pending == 0 and publisher.published == 3


def test_a_full_queue_drops_runs_and_counts_them_never_waits(publisher, store, recorder):
    for _ in range(8):
        run(recorder, executed("meta.purchase"))

    assert publisher.pending == 5 and publisher.dropped == 3
    assert recorder.total_runs == 8, "the page's own record keeps every run"
    publisher.flush()
    assert len(store.writes[0].runs) == 5
    assert meta(store.writes[0]).dropped == 3


def test_a_write_stuck_on_redis_never_holds_the_runs_that_end_meanwhile(publisher, store, recorder):
    run(recorder, executed("meta.purchase"))
    store.gate = threading.Event()
    flusher = threading.Thread(target=publisher.flush)
    flusher.start()
    try:
        assert store.writing.wait(10), "the flush reached Redis"
        for _ in range(7):  # while the write hangs
            run(recorder, executed("meta.purchase"))
        assert publisher.pending == 5 and publisher.dropped == 2, "queued up to the bound, then dropped"
        assert recorder.total_runs == 8
    finally:
        store.gate.set()
        flusher.join(10)
    assert len(store.writes) == 1 and len(store.writes[0].runs) == 1


def test_a_dead_redis_drops_the_batch_backs_off_and_warns_once(publisher, store, recorder, clock, logs):
    store.failing = RedisConnectionError(f"Error 111 connecting to redis://:{PASSWORD}@10.0.0.5:6379/0.")
    run(recorder, executed("meta.purchase"))

    assert not publisher.flush()
    assert publisher.dropped == 1 and publisher.pending == 0
    run(recorder, executed("meta.purchase"))
    clock.now += RETRY_MIN_SECONDS / 2
    assert not publisher.flush() and publisher.pending == 1, "backing off: Redis is not tried"
    for _ in range(6):  # each try doubles the wait, up to its ceiling
        clock.now += RETRY_MAX_SECONDS
        assert not publisher.flush()
        run(recorder, executed("meta.purchase"))

    [warning] = logs.at("WARNING")  # one line per outage, not one per flush
    assert "ConnectionError" in warning and "10.0.0.5:6379" in warning
    assert not [r for r in logs.records if PASSWORD in r.getMessage()], "the URL's password is masked"
    assert publisher._backoff == RETRY_MAX_SECONDS

    store.failing = None
    clock.now += RETRY_MAX_SECONDS
    assert publisher.flush()

    [write] = store.writes
    assert len(write.runs) == 1 and publisher.dropped == 7, "one per failed flush, the last one sent"
    [back] = [line for line in logs.at("INFO") if "again" in line]
    assert "7 dropped" in back
    assert publisher._backoff == RETRY_MIN_SECONDS


def test_a_slow_redis_is_an_outage_like_a_dead_one(publisher, store, recorder, logs):
    store.failing = RedisTimeoutError("Timeout reading from socket")
    run(recorder, executed("meta.purchase"))

    assert not publisher.flush()

    assert publisher.dropped == 1 and publisher.outage.down
    assert "TimeoutError: Timeout reading from socket" in publisher.outage.error


def test_after_a_failed_write_or_a_lost_hash_every_name_is_written_again(publisher, store, recorder, clock):
    run(recorder, executed("meta.purchase"), executed("crm.sync"))
    publisher.flush()
    run(recorder, executed("crm.sync"))
    publisher.flush()
    assert set(store.writes[1].names) == {"crm.sync"}, "only what changed"

    store.failing = RedisConnectionError("down")
    run(recorder, executed("crm.sync"))
    publisher.flush()
    store.failing = None
    clock.now += RETRY_MIN_SECONDS
    publisher.flush()
    assert set(store.writes[2].names) == {"meta.purchase", "crm.sync"}, "Redis may have lost them"

    store.fresh = True  # the worker's hash was gone (Redis restarted between two flushes)
    run(recorder, executed("crm.sync"))
    publisher.flush()
    store.fresh = False
    run(recorder, executed("crm.sync"))
    publisher.flush()
    assert set(store.writes[3].names) == {"crm.sync"}
    assert set(store.writes[4].names) == {"meta.purchase", "crm.sync"}


def test_an_idle_worker_writes_its_counters_every_heartbeat_and_nothing_else(publisher, store, clock):
    publisher.flush()
    assert len(store.writes) == 1, "the first flush announces the worker"
    clock.now += HEARTBEAT_SECONDS - 1
    publisher.flush()
    assert len(store.writes) == 1

    clock.now += 1
    publisher.flush()

    [_, heartbeat] = store.writes
    assert heartbeat.runs == [] and heartbeat.names == {} and heartbeat.dropped_names == ()
    assert heartbeat.now == 1.8e9 + clock.now


def test_a_name_the_recorder_drops_is_removed_from_redis(publisher, store, recorder):
    run(recorder, executed("a"), executed("b"), executed("c"))
    publisher.flush()

    run(recorder, executed("d"))  # max_task_names is 3: "a", seen least recently, goes
    publisher.flush()

    assert store.writes[1].dropped_names == ("a",) and set(store.writes[1].names) == {"d"}


def test_a_forked_child_publishes_as_a_worker_of_its_own(store, recorder, clock):
    pid = [100]
    publisher = Publisher(store, recorder, Outage(clock=clock), clock=clock, getpid=lambda: pid[0],
                          start_thread=False)
    recorder.sink = publisher.submit
    run(recorder, executed("meta.purchase"))
    parent = publisher.worker

    pid[0] = 101
    run(recorder, executed("meta.purchase"))

    assert publisher.pending == 1, "the parent's queued run is not the child's"
    assert publisher.worker.pid == 101 and publisher.worker != parent
    publisher.flush()
    assert [run_of(raw).number for raw in store.writes[0].runs] == [2]


def test_a_run_with_more_tasks_than_an_entry_holds_is_cut_and_says_so(publisher, store, recorder):
    run(recorder, *(executed(f"t.{i % 3}", 0.0) for i in range(MAX_TASKS_PER_RUN + 7)))
    publisher.flush()

    shown = run_of(store.writes[0].runs[0])
    assert len(shown.tasks) == MAX_TASKS_PER_RUN and shown.tasks_cut == 7


def test_a_closed_publisher_drops_and_counts(publisher, recorder):
    publisher.close()
    run(recorder, executed("meta.purchase"))
    assert publisher.pending == 0 and publisher.dropped == 1


@pytest.mark.parametrize("url", [
    f"redis://:{PASSWORD}@10.0.0.5:6379/0", f"rediss://user:{PASSWORD}@10.0.0.5:6379/0",
    "redis://:pa/ss@word@10.0.0.5:6379/0",  # a password with / and @ unescaped
])
def test_an_error_s_text_is_shown_with_any_url_s_credentials_masked(url):
    shown = describe(RedisConnectionError(f"Error connecting to {url}. Refused."))
    scheme = url.split("://")[0]
    assert shown == f"ConnectionError: Error connecting to {scheme}://***@10.0.0.5:6379/0. Refused."


def test_a_reply_from_redis_cannot_forge_a_log_line(publisher, store, recorder, logs):
    store.failing = RedisConnectionError("refused\n2026-01-01 | ERROR | forged line\x1b[31m")
    run(recorder, executed("meta.purchase"))

    publisher.flush()

    [warning] = logs.at("WARNING")
    assert "\n" not in warning and "\x1b" not in warning and "refused\ufffd2026-01-01" in warning

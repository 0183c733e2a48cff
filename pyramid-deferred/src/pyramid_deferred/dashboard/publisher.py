"""This process's runs and statistics, sent to Redis by a background thread, off the request path.

The recorder hands each run to :meth:`Publisher.submit`: an append to a bounded queue under a lock,
never a wait on Redis, never an exception into the run; a full queue drops the run and counts it.
Every ``FLUSH_SECONDS`` the thread takes the queued runs and the names whose statistics changed
and writes them in one pipelined round trip (:meth:`SharedStore.write`); with nothing new it still
writes the worker's counters every ``HEARTBEAT_SECONDS``, so that a live worker's keys outlive
their TTL. A write that fails drops its runs (counted), backs off (1 s, doubling to 30 s), makes
the next write resend every name, and is logged once per outage (:class:`Outage`).

Fork-safe: the thread starts with the first run, in the process that ran it; a child forked from
a process that had started one (gunicorn's ``preload_app``) starts afresh, as a worker of its own.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from pyramid_deferred.core.log import get_logger
from pyramid_deferred.dashboard.outage import Outage
from pyramid_deferred.dashboard.recorder import Recorder, RunView
from pyramid_deferred.dashboard.redis_store import Failure, Publication
from pyramid_deferred.dashboard.wire import (
    PUBLISHED_SAMPLES,
    WorkerId,
    WorkerMeta,
    encode_meta,
    encode_name,
    encode_run,
)

log = get_logger(__name__)

FLUSH_SECONDS = 1.0
HEARTBEAT_SECONDS = 10.0
MAX_PENDING_RUNS = 1000
"""Runs waiting for the thread; past it a run is dropped (counted), never waited for."""
MAX_RUNS_PER_FLUSH = 500
RETRY_MIN_SECONDS, RETRY_MAX_SECONDS = 1.0, 30.0
STOP_TIMEOUT_SECONDS = 5.0


class Store(Protocol):
    def write(self, publication: Publication) -> bool:
        """One round trip; True when the worker's record was new (write every name next time)."""


class Publisher:
    """One per app and process; ``clock`` (monotonic) and ``wall`` (epoch) may be replaced in tests,
    which call :meth:`flush` themselves (``start_thread=False``)."""

    def __init__(
        self,
        store: Store,
        recorder: Recorder,
        outage: Outage,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        getpid: Callable[[], int] = os.getpid,
        max_pending: int = MAX_PENDING_RUNS,
        start_thread: bool = True,
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.outage = outage
        self.clock = clock
        self.wall = wall
        self.getpid = getpid
        self.max_pending = max_pending
        self.start_thread = start_thread
        self._stop = threading.Event()
        self._begin()

    def _begin(self) -> None:
        """This process's state: a new worker id, an empty queue, no thread yet."""
        self.pid = self.getpid()
        self.worker = WorkerId(self.recorder.host, self.pid, secrets.token_hex(4))
        self.started_at = self.wall()
        self.published = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._pending: deque[RunView] = deque()
        self._thread: threading.Thread | None = None
        self._resync = True
        self._retry_at = 0.0
        self._backoff = RETRY_MIN_SECONDS
        self._next_heartbeat = 0.0

    def __repr__(self) -> str:
        return f"Publisher(worker={self.worker}, published={self.published}, dropped={self.dropped})"

    @property
    def pending(self) -> int:
        return len(self._pending)

    def adopt(self) -> None:
        """In a forked child, start afresh: the parent's queue, thread and id are not its own."""
        if self.getpid() != self.pid:
            self._begin()

    def submit(self, run: RunView) -> None:
        """Queue a run for the next flush (called after the run, by the recorder): never blocks."""
        self.adopt()
        with self._lock:
            if len(self._pending) >= self.max_pending or self._stop.is_set():
                self.dropped += 1
                return
            self._pending.append(run)
            if self._thread is None and self.start_thread:
                self._start()

    def _start(self) -> None:
        thread = threading.Thread(target=self._loop, name="deferred-dashboard-publisher", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down: the runs stay queued, unpublished
            return
        self._thread = thread

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            try:
                self.flush()
            except Exception:  # a bug here must not end the thread: the next flush tries again
                log.exception("Dashboard: publishing to Redis failed")

    def flush(self) -> bool:
        """Write what is new (or the heartbeat) if due; False when the write failed or waits."""
        now = self.clock()
        if now < self._retry_at:
            return False
        with self._lock:
            runs = [self._pending.popleft() for _ in range(min(len(self._pending), MAX_RUNS_PER_FLUSH))]
        everything = self._resync
        changes = self.recorder.take_changes(everything=everything, samples=PUBLISHED_SAMPLES)
        if not runs and not changes.names and not changes.dropped and now < self._next_heartbeat:
            return True
        meta = WorkerMeta(started_at=self.started_at, total_runs=changes.total_runs,
                          published=self.published + len(runs), dropped=self.dropped,
                          evicted_task_names=changes.evicted_names)
        publication = Publication(
            worker=self.worker, now=self.wall(), meta=encode_meta(meta),
            runs=[encode_run(run) for run in runs],
            names={sample.name: encode_name(sample) for sample in changes.names},
            dropped_names=changes.dropped,
        )
        try:
            fresh = self.store.write(publication)
        except Failure as error:
            with self._lock:
                self.dropped += len(runs)
            self._resync = True
            self._retry_at = now + self._backoff
            self._backoff = min(self._backoff * 2, RETRY_MAX_SECONDS)
            self.outage.failed(error, dropped=self.dropped)
            return False
        self.published += len(runs)
        self._resync = fresh and not everything  # Redis had lost the names this write did not carry
        self._backoff = RETRY_MIN_SECONDS
        self._next_heartbeat = now + HEARTBEAT_SECONDS
        self.outage.recovered(dropped=self.dropped)
        return True

    def close(self) -> None:
        """Stop the thread (tests, an app's end); what is queued is not sent."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT_SECONDS)

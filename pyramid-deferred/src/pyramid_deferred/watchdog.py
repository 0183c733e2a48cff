"""The watchdog: a task still running far past its declared cost is named, never invisible.

A task blocked far past its cost (a socket without a timeout, a lock never released) silently
takes a server thread out of service; with all threads stuck the server stops answering, with no
log line at all. The watchdog keeps the batches being run, and from one thread per process
(started with the first batch) it checks them once per interval:

- past ``overrun_factor`` x its declared cost (and at least ``min_overrun_seconds`` past it): one
  WARNING naming the task, its request id, how long it has run, and the thread's current stack;
- past the hard limit (the request's whole life, a server's kill timeout): one ERROR, and the
  ``on_stuck`` callback (under gunicorn: the worker asks to be replaced, so capacity comes back).

At process exit, ``pyramid_deferred.lifecycle`` decides what is unfinished; the watchdog tells it
which thread runs a batch (:meth:`Watchdog.thread_of`).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyramid_deferred.core.log import get_logger

if TYPE_CHECKING:
    from pyramid_deferred.batch import RequestBatch

log = get_logger(__name__)

DEFAULT_INTERVAL_SECONDS = 1.0
OVERRUN_FACTOR = 2.0
MIN_OVERRUN_SECONDS = 1.0
STACK_LINES = 12


@dataclass
class _Running:
    batch: RequestBatch
    thread: threading.Thread
    warned: object = None
    """The task last warned about (a task is warned about once)."""
    stuck: object = None
    """The task last reported past the hard limit."""


@dataclass
class Watchdog:
    clock: Callable[[], float] = time.monotonic
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    overrun_factor: float = OVERRUN_FACTOR
    min_overrun_seconds: float = MIN_OVERRUN_SECONDS
    on_stuck: Callable[[RequestBatch], object] | None = None
    """Called once per batch whose task passed the hard limit (``pyramid_deferred.gunicorn``
    sets it so that the worker asks to be replaced)."""
    _running: dict[int, _Running] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    overrunning: int = 0
    """Tasks running past their declared cost at the last check (a gauge for metrics)."""
    listeners: list[Callable[[int], object]] = field(default_factory=list)
    """Called after each check with :attr:`overrunning` (the metrics' gauge)."""

    def started(self, batch: RequestBatch) -> None:
        thread = threading.current_thread()
        with self._lock:
            self._running[id(batch)] = _Running(batch, thread)
            if self._thread is None:  # lazily, in the process that serves requests
                self._thread = threading.Thread(target=self._watch, name="deferred-watchdog", daemon=True)
                self._thread.start()

    def ended(self, batch: RequestBatch) -> None:
        with self._lock:
            self._running.pop(id(batch), None)

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> None:
        """One round of checks (the watchdog thread calls it every interval; tests call it)."""
        now = self.clock()
        with self._lock:
            running = list(self._running.values())
        overrunning = 0
        for entry in running:
            batch = entry.batch
            task = batch.runner.current_task
            if task is None:
                continue
            elapsed = now - batch.runner.current_task_started
            over = elapsed - task.max_cost_seconds
            if over > 0:
                overrunning += 1
            if entry.warned is not task and over >= max(self.min_overrun_seconds,
                                                        task.max_cost_seconds * (self.overrun_factor - 1)):
                entry.warned = task
                log.warning(
                    "Deferred task %s is still running after %.1fs (declared %ss) on thread %s; "
                    "its stack:\n%s",
                    task.name, elapsed, task.max_cost_seconds, entry.thread.name, _stack_of(entry.thread),
                    extra={"request_id": batch.request_id},
                )
            ceiling = batch.ceiling_seconds()
            if ceiling is not None and ceiling < 0 and entry.stuck is not task:
                entry.stuck = task
                log.error(
                    "Deferred task %s is still running %.1fs past the hard limit (%ss of request time); "
                    "unfinished: %s",
                    task.name, -ceiling, batch.hard_limit_seconds, ", ".join(batch.pending_names()),
                    extra={"request_id": batch.request_id},
                )
                if self.on_stuck is not None:
                    try:
                        self.on_stuck(batch)
                    except Exception:
                        log.exception("The watchdog's on_stuck failed")
        self.overrunning = overrunning
        for listener in self.listeners:
            listener(overrunning)

    def thread_of(self, batch: RequestBatch) -> threading.Thread | None:
        """The thread running ``batch`` now, or None (not started, or ended)."""
        with self._lock:
            entry = self._running.get(id(batch))
        return None if entry is None else entry.thread

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                self.check()
            except Exception:  # the watchdog must outlive whatever it watches
                log.exception("The deferred-task watchdog failed a check")


def _stack_of(thread: threading.Thread) -> str:
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return "  (no stack: the thread has ended)"
    lines = traceback.format_stack(frame)[-STACK_LINES:]
    return "".join(lines).rstrip()

"""The watchdog: a task still running far past its declared cost is named, never invisible.

A task blocked far past its cost (a socket without a timeout, a lock never released) silently
takes a server thread out of service; with all threads stuck the server stops answering, with no
log line at all. The watchdog watches the app's live batches (each scheduled batch until its
report: the set the stopping process uses too), and from one thread per process (started with the
first batch) it checks those running once per interval:

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
class Watchdog:
    clock: Callable[[], float] = time.monotonic
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    overrun_factor: float = OVERRUN_FACTOR
    min_overrun_seconds: float = MIN_OVERRUN_SECONDS
    on_stuck: Callable[[RequestBatch], object] | None = None
    """Called once per batch whose task passed the hard limit (``pyramid_deferred.gunicorn``
    sets it so that the worker asks to be replaced)."""
    _live: set[RequestBatch] = field(default_factory=set)
    """The app's live batches (scheduled, not yet reported): those running have a ``thread``."""
    _warned: dict[int, object] = field(default_factory=dict)
    """Per batch, the task last warned about (a task is warned about once)."""
    _stuck: dict[int, object] = field(default_factory=dict)
    """Per batch, the task last reported past the hard limit."""
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    overrunning: int = 0
    """Tasks running past their declared cost at the last check (a gauge for metrics)."""
    listeners: list[Callable[[int], object]] = field(default_factory=list)
    """Called after each check with :attr:`overrunning` (the metrics' gauge)."""

    def watch(self, live: set[RequestBatch]) -> None:
        """Watch these batches (the app's live ones: a batch adds itself when it is scheduled and
        leaves when it is reported, so the watchdog costs a batch nothing more); the watchdog's
        thread starts with the first, in the process that serves requests."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._live = live
                    self._thread = threading.Thread(target=self._watch, name="deferred-watchdog", daemon=True)
                    self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> None:
        """One round of checks (the watchdog thread calls it every interval; tests call it)."""
        now = self.clock()
        running = [batch for batch in list(self._live) if batch.thread is not None]
        ids = {id(batch) for batch in running}
        for seen in (self._warned, self._stuck):
            for gone in [key for key in seen if key not in ids]:
                del seen[gone]
        overrunning = 0
        for batch in running:
            task, thread = batch.runner.current_task, batch.thread
            if task is None or thread is None:
                continue
            elapsed = now - batch.runner.current_task_started
            over = elapsed - task.max_cost_seconds
            if over > 0:
                overrunning += 1
            if self._warned.get(id(batch)) is not task and over >= max(
                self.min_overrun_seconds, task.max_cost_seconds * (self.overrun_factor - 1)
            ):
                self._warned[id(batch)] = task
                log.warning(
                    "Deferred task %s is still running after %.1fs (declared %ss) on thread %s; "
                    "its stack:\n%s",
                    task.name, elapsed, task.max_cost_seconds, thread.name, _stack_of(thread),
                    extra={"request_id": batch.request_id},
                )
            ceiling = batch.ceiling_seconds()
            if ceiling is not None and ceiling < 0 and self._stuck.get(id(batch)) is not task:
                self._stuck[id(batch)] = task
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

    @staticmethod
    def thread_of(batch: RequestBatch) -> threading.Thread | None:
        """The thread running ``batch`` now, or None (not started, or ended)."""
        return batch.thread

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

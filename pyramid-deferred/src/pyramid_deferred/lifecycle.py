"""When the process stops: unfinished batches get a grace period, then each is decided (durable
tasks spill, the others are named at ERROR), whatever ran them.

A batch may be unfinished at a stop in four places: queued or running on the hand-off worker,
running inline in the body's ``close()`` on a server thread, waiting for its trigger (a body
still being sent, uWSGI's after-request hook), or with tasks in flight on the concurrent pool.
:class:`ProcessStop` knows them all (the app's *live* batches: from their scheduling to their
report) and decides them the same way, once:

- :meth:`ProcessStop.begin` when the process is told to stop (SIGTERM: the handler below, or
  ``pyramid_deferred.gunicorn``'s under gunicorn): the grace starts, and a timer gives up at its
  end even if a server thread is still busy with a task (gunicorn would kill the worker soon after;
  a thread pool's threads keep the interpreter from reaching ``atexit`` until they end);
- :meth:`ProcessStop.finish` at interpreter exit (``atexit``, uWSGI's ``atexit``): the hand-off
  worker drains within what is left of the grace, the other batches get the same, then what is
  still unfinished is decided (:meth:`ProcessStop.give_up`).
"""

from __future__ import annotations

import atexit
import signal
import threading
import time
import weakref
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from pyramid_deferred import uwsgi as uwsgi_trigger
from pyramid_deferred.core.handoff import HandOffWorker
from pyramid_deferred.core.log import get_logger
from pyramid_deferred.watchdog import Watchdog

if TYPE_CHECKING:
    from pyramid_deferred.batch import RequestBatch

log = get_logger(__name__)

POLL_SECONDS = 0.05
GIVE_UP_WAIT_SECONDS = 30.0
"""How long the exit waits for a stop already deciding the batches (spilling, on the timer's thread)."""

_stops: weakref.WeakSet[ProcessStop] = weakref.WeakSet()
"""Every app's stop in this process: a SIGTERM begins them all."""


class ProcessStop:
    """One per app: how its unfinished batches end when the process stops."""

    def __init__(
        self,
        worker: HandOffWorker,
        watchdog: Watchdog,
        live: set[RequestBatch],
        *,
        grace_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker = worker
        self.watchdog = watchdog
        self.live = live
        self.grace_seconds = grace_seconds
        self.clock = clock
        self._deadline: float | None = None
        self._given_up = False
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._decided = threading.Event()
        _stops.add(self)

    @property
    def deadline(self) -> float | None:
        """``clock()`` when the grace ends; None until the stop began."""
        return self._deadline

    def begin(self, grace_seconds: float | None = None) -> None:
        """The process was told to stop: unfinished batches get ``grace_seconds`` from now (the
        app's ``shutdown_grace_seconds``, or less: a server that kills sooner passes its own), then
        a timer gives up on what is left, even while a server thread is still busy with a task."""
        grace = self.grace_seconds
        if grace_seconds is not None:
            grace = max(0.0, min(grace_seconds, grace))
        with self._lock:
            deadline = self.clock() + grace
            if self._given_up or (self._deadline is not None and self._deadline <= deadline):
                return
            self._deadline = deadline
            if self._timer is not None:
                self._timer.cancel()
            self._timer = timer = threading.Timer(grace, self.give_up)
            timer.name = "deferred-stop"
            timer.daemon = True
            timer.start()

    def finish(self) -> None:
        """At interpreter exit: the hand-off worker drains, and the other unfinished batches run on,
        within what is left of the grace (all of it when no stop was announced); then what is still
        unfinished is decided."""
        with self._lock:
            if self._deadline is None:
                self._deadline = self.clock() + self.grace_seconds
            deadline = self._deadline
        self.worker.shutdown(max(0.0, deadline - self.clock()), give_up=False)
        while self.live and self.clock() < deadline:
            time.sleep(POLL_SECONDS)
        self.give_up()
        self.watchdog.stop()

    def give_up(self) -> list[str]:
        """Decide every unfinished batch now: its durable tasks spill, the others are discarded and
        named at ERROR (the hand-off worker's in one line, each other batch in one line of its own).
        Returns the names of the lost tasks. Once per process stop."""
        with self._lock:
            if self._given_up:
                given_up_elsewhere = True
            else:
                self._given_up, given_up_elsewhere = True, False
                if self._timer is not None:
                    self._timer.cancel()
        if given_up_elsewhere:  # the other one may be spilling: the process must not exit under it
            self._decided.wait(GIVE_UP_WAIT_SECONDS)
            return []
        try:
            return self._decide_all()
        finally:
            self._decided.set()

    def _decide_all(self) -> list[str]:
        lost = self.worker.give_up(self.grace_seconds)
        for batch in list(self.live):
            unfinished = batch.abandon()
            if not unfinished:
                continue
            lost.extend(unfinished)
            where = self.watchdog.thread_of(batch)
            log.error(
                "The process is stopping while a batch %s: abandoning %d deferred task(s): %s",
                f"runs on thread {where.name}" if where is not None else "waits for its trigger",
                len(unfinished), ", ".join(unfinished), extra={"request_id": batch.request_id},
            )
        return lost


def install_shutdown(stop: ProcessStop, *, exit_on_sigterm: bool) -> None:
    """Decide unfinished batches at interpreter exit (gunicorn and pserve both exit through
    atexit; uWSGI calls its own ``atexit``).

    Anything the app registered with ``atexit`` before (closing its HTTP clients, say) runs
    after this: atexit calls the last registered first.

    ``exit_on_sigterm``: make SIGTERM a normal exit where nobody handles it (pserve/waitress:
    by default SIGTERM kills Python without running atexit), beginning the stop's grace first.
    gunicorn and uWSGI install their own handlers, so theirs are left alone
    (``pyramid_deferred.gunicorn`` begins the grace in gunicorn's).
    """
    atexit.register(stop.finish)
    uwsgi: Any = uwsgi_trigger.uwsgi
    if uwsgi is not None:
        previous = getattr(uwsgi, "atexit", None)

        def uwsgi_atexit() -> None:
            stop.finish()
            if callable(previous):
                previous()

        uwsgi.atexit = uwsgi_atexit
    in_main_thread = threading.current_thread() is threading.main_thread()
    # uWSGI's SIGTERM handlers are C handlers Python cannot see: never replace them.
    unhandled = uwsgi is None and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    if exit_on_sigterm and in_main_thread and unhandled:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def begin_every_stop(grace_seconds: float | None = None) -> None:
    """The process was told to stop: every app's grace begins now."""
    for stop in list(_stops):
        stop.begin(grace_seconds)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    begin_every_stop()
    raise SystemExit(128 + signum)

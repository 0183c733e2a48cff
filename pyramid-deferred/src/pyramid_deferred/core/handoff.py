"""A bounded pool of background threads that runs whole batches after the request thread let go.

Used where the client cannot see the end of the body before the server calls ``close()``
(no Content-Length on waitress, wsgiref, uWSGI): running the batch inline there would make the
client wait. Bounded on both sides: a fixed number of threads and a fixed queue length; a full
queue returns False and the caller runs the batch itself (back-pressure, never a drop).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from pyramid_deferred.core.log import get_logger

log = get_logger(__name__)


class Batch(Protocol):
    """What the worker needs of a request's batch: run it, and name what is still unrun.

    A batch may also have ``abandon() -> Sequence[str]``: called at shutdown instead of
    ``pending_names()``, it decides what is left (a durable task spills) and names what is lost.
    """

    def run_once(self) -> object: ...

    def pending_names(self) -> Sequence[str]: ...


def _abandon(batch: Batch) -> Sequence[str]:
    abandon = getattr(batch, "abandon", None)
    names: Sequence[str] = abandon() if abandon is not None else batch.pending_names()
    return names


_STOP = object()


class HandOffWorker:
    def __init__(
        self,
        *,
        threads: int = 2,
        queue_size: int = 100,
        grace_seconds: float = 10.0,
        logger: logging.Logger = log,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be an int >= 1, got {threads!r}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size must be an int >= 1, got {queue_size!r}")
        if grace_seconds < 0:
            raise ValueError(f"grace_seconds must be >= 0, got {grace_seconds!r}")
        self._thread_count = threads
        self.grace_seconds = float(grace_seconds)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._logger = logger
        self._clock = clock
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._running: dict[int, Batch] = {}
        self._closed = False
        self._given_up = False
        self._queue_listeners: list[Callable[[int], object]] = []

    @property
    def threads(self) -> frozenset[threading.Thread]:
        return frozenset(self._threads)

    @property
    def queue_length(self) -> int:
        return self._queue.qsize()

    @property
    def busy_threads(self) -> int:
        return len(self._running)

    def add_queue_listener(self, listener: Callable[[int], object]) -> None:
        """Called with the queue length whenever it changes (a metrics gauge, say)."""
        self._queue_listeners.append(listener)

    def _queue_changed(self) -> None:
        length = self._queue.qsize()
        for listener in self._queue_listeners:
            try:
                listener(length)
            except Exception:
                self._logger.exception("Hand-off queue listener failed")

    @property
    def accepting(self) -> bool:
        return not self._closed

    def submit(self, batch: Batch) -> bool:
        """Queue ``batch``; False when the worker is full or shut down, and the caller must run it."""
        with self._lock:
            if self._closed:
                return False
            self._start_threads()
            try:
                self._queue.put_nowait(batch)
            except queue.Full:
                return False
        self._queue_changed()
        return True

    def shutdown(self, grace_seconds: float | None = None, *, give_up: bool = True) -> list[str]:
        """Stop taking batches, let queued ones run for up to the grace period, then (``give_up``)
        decide what is left (:meth:`give_up`). Returns the names of the tasks that could not run."""
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        with self._lock:
            closing = not self._closed
            self._closed = True
            threads = list(self._threads)
        if closing:
            deadline = self._clock() + grace
            for _ in threads:
                self._put_stop(deadline=deadline)
            for thread in threads:
                thread.join(timeout=max(0.0, deadline - self._clock()))
        return self.give_up(grace) if give_up else []

    def give_up(self, grace_seconds: float | None = None) -> list[str]:
        """Decide now every batch still queued or running (a batch's ``abandon()``: durable tasks
        spill), name the lost tasks in one ERROR line, and return their names. Once; from any thread."""
        with self._lock:
            self._closed = True
            if self._given_up:
                return []
            self._given_up = True
        unrun = self._unrun_names()
        if unrun:
            self._logger.error(
                "Shutting down with %d deferred task(s) that did not run or finish within the %ss grace "
                "period: %s",
                len(unrun), self.grace_seconds if grace_seconds is None else grace_seconds, ", ".join(unrun),
            )
        return unrun

    def _put_stop(self, *, deadline: float) -> None:
        while True:
            try:
                self._queue.put(_STOP, timeout=0.05)
                return
            except queue.Full:
                if self._clock() >= deadline:
                    return

    def _unrun_names(self) -> list[str]:
        names: list[str] = []
        for batch in list(self._running.values()):
            try:
                names.extend(_abandon(batch))
            except Exception:
                self._logger.exception("Deferred task batch failed to stop")
                names.extend(batch.pending_names())
        stops = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stops += 1
                continue
            try:
                names.extend(_abandon(item))  # type: ignore[arg-type]
            except Exception:
                self._logger.exception("Deferred task batch failed to stop")
                names.extend(item.pending_names())  # type: ignore[attr-defined]
        for _ in range(stops):  # the threads still take their stop signal
            self._queue.put_nowait(_STOP)
        return names

    def _start_threads(self) -> None:
        # Lazily, in the process that serves requests: threads do not survive a fork.
        if self._threads:
            return
        for index in range(self._thread_count):
            thread = threading.Thread(target=self._work, name=f"deferred-task-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        ident = threading.get_ident()
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch: Batch = item  # type: ignore[assignment]
            self._running[ident] = batch
            self._queue_changed()
            try:
                batch.run_once()
            except BaseException:
                self._logger.exception("Deferred task batch crashed its worker thread")
            finally:
                del self._running[ident]

"""One request's deferred work, and the guarantee that it is decided exactly once."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from loguru import logger

from pyramid_deferred.core import DeferredTaskRunner, Outcome, RunReport
from pyramid_deferred.core.log import deferred_task_logger
from pyramid_deferred.core.task import DeferredTask
from pyramid_deferred.durable import DurableCall, DurableRun, SpillOver, SpillReason
from pyramid_deferred.observers import ReportObserver, notify_observers
from pyramid_deferred.request_id import new_request_id
from pyramid_deferred.scope import _current

if TYPE_CHECKING:
    from pyramid_deferred.watchdog import Watchdog

BATCH_ATTR = "deferred_task_batch"
"""The request attribute holding its batch."""


class Trigger(StrEnum):
    """What ran a batch; logged at DEBUG when it starts."""

    DIRECT = "a direct call"
    CLOSE = "close"
    THREAD = "thread"
    UWSGI = "uwsgi"
    INLINE_DISABLED = "the tween (disabled mode: before the response)"
    FINISHED_CALLBACK = "the finished callback"
    INLINE_QUEUE_FULL = "inline (hand-off queue full)"
    INLINE_SHUTTING_DOWN = "inline (shutting down)"


@dataclass
class RequestBatch:
    """Binds a request's runner to the moment it must run; captured by value, not looked up later.

    By the time the server calls ``close()`` the request's threadlocals are gone, and a hand-off
    runs on another thread: the batch keeps the runner object and a copy of the request's context
    (with the runner set as :func:`pyramid_deferred.current_runner`), so tasks that defer more
    work reach their own request's runner. The request id (put on every log line of the run) and
    the report observers travel with it too.
    """

    runner: DeferredTaskRunner
    hard_limit_seconds: float = 0.0
    """Seconds the request may live in total (a server's kill timeout); 0 = no hard limit."""
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    request_id: str = field(default_factory=new_request_id)
    observers: tuple[ReportObserver, ...] = ()
    request_failed: bool = False
    transaction_committed: bool | None = None
    """None without pyramid_tm; False while its transaction is open, and if it was aborted."""
    scheduled: bool = False
    """True once the run is attached to a trigger after the response; the safety net stays out."""
    context: contextvars.Context | None = None
    trigger: Trigger = Trigger.DIRECT
    watchdog: Watchdog | None = None
    """Knows the batch while it runs: names a task far past its cost, and what is left at exit."""
    scheduled_at: float | None = None
    """``clock()`` when the response left the app and the batch was attached to its trigger."""
    run_started_at: float | None = None
    """``clock()`` when the run began: minus ``scheduled_at``, the wait the response's delivery took."""
    notes: dict[str, object] = field(default_factory=dict)
    """What add-ons note about the request for the observers, which never see the request
    (``pyramid_deferred.tracing``: the request's span; ``pyramid_deferred.dashboard``: its line)."""
    spill_over: SpillOver | None = None
    """Where this request's durable tasks go instead of being lost (None: spill-over off)."""
    _done: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.started:
            self.started = self.clock()

    def capture_context(self) -> None:
        """Keep a copy of the current context, in which this batch's runner is the current one.

        Called when the response leaves the app: that moment is ``scheduled_at``."""
        self.scheduled_at = self.clock()
        self.context = contextvars.copy_context()
        self.context.run(_current.set, self.runner)

    def ceiling_seconds(self) -> float | None:
        """What the hard limit leaves of this request's life, right now (the spec's table)."""
        if not self.hard_limit_seconds:
            return None
        return self.hard_limit_seconds - (self.clock() - self.started)

    def pending_names(self) -> list[str]:
        """Tasks that have not run yet; one still running (at shutdown) comes first, marked so."""
        current = self.runner.current_task
        running = [f"{current.name} (still running)"] if current is not None else []
        return running + [task.name for task in self.runner.pending()]

    @property
    def decided(self) -> bool:
        """Run, or discarded: nothing more will happen to this batch."""
        return self._done

    def _claim(self) -> bool:
        with self._lock:
            if self._done:
                return False
            self._done = True
            return True

    def run_once(self, trigger: Trigger | None = None) -> RunReport | None:
        """Run the batch unless it was already decided; never lets an ``Exception`` reach the server.

        Every log record written during the run (the runner's, the tasks', the observers')
        carries ``extra["request_id"]``.
        """
        if not self._claim():
            return None
        if trigger is not None:
            self.trigger = trigger
        if self.context is not None:
            return self.context.run(self._run)
        return self._run()

    def abandon(self) -> list[str]:
        """The process stops (the hand-off worker's grace ran out) with this batch queued or
        running: take its queued tasks out, spill the durable ones, and return the names of the
        tasks that are lost (to be named at ERROR). A task still running is named lost too, or,
        if it is durable, spilled: its idempotency key, held by the run here until it ends or its
        lease expires, keeps the engine's copy from running while this one still might."""
        never_started = self._claim()
        hooks = self.runner.durable
        run = hooks if isinstance(hooks, DurableRun) else None
        if run is None and self.spill_over is not None:
            run = self.spill_over.for_request(self.request_id)
        lost: list[str] = []
        with logger.contextualize(request_id=self.request_id):
            current = self.runner.current_task
            if current is not None:
                running = run.running if run is not None else None
                if running is None or running[0] is not current or not run.spill(  # type: ignore[union-attr]
                    current, running[1], SpillReason.SHUTDOWN, detail="still running when the grace ran out"
                ):
                    lost.append(f"{current.name} (still running)")

            def decide(task: DeferredTask, sequence: int) -> Outcome:
                if run is not None and type(task.task) is DurableCall and run.spill(
                    task, sequence, SpillReason.SHUTDOWN, detail="still queued when the grace ran out"
                ):
                    return Outcome.SPILLED
                lost.append(task.name)
                return Outcome.DISCARDED

            self.runner.withdraw(decide)
            if never_started:  # nobody will report it otherwise: its report balances the ledger
                report = self.runner.run(request_failed=True)
                self.runner.close()
                notify_observers(self, report)
        return lost

    def discard_once(self, reason: str) -> RunReport | None:
        """Decide the batch without running anything: every task, ``always`` included, is discarded."""
        if not self._claim():
            return None
        with logger.contextualize(request_id=self.request_id):
            report = self.runner.discard(reason)
            self.runner.close()
            notify_observers(self, report)
            return report

    def _run(self) -> RunReport | None:
        watchdog = self.watchdog
        if watchdog is not None:
            watchdog.started(self)
        try:
            return self._run_watched()
        finally:
            if watchdog is not None:
                watchdog.ended(self)

    def _run_watched(self) -> RunReport | None:
        with logger.contextualize(request_id=self.request_id):
            self.run_started_at = self.clock()
            if self.spill_over is not None:
                self.runner.durable = self.spill_over.for_request(self.request_id)
            try:
                report = self.runner.run(
                    ceiling_seconds=self.ceiling_seconds(), request_failed=self.request_failed,
                    via=self.trigger.value,
                )
            except Exception:
                deferred_task_logger.opt(exception=True).error("Deferred task run failed")
                return None
            finally:
                self.runner.close()
            notify_observers(self, report)
            return report

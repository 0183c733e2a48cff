"""One request's deferred work, and the guarantee that it is decided exactly once."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from pyramid_deferred.core import DeferredTaskRunner, RunReport
from pyramid_deferred.core.log import get_logger, request_id_var
from pyramid_deferred.durable import DurableRun, SpillOver
from pyramid_deferred.observers import ReportObserver, notify_observers
from pyramid_deferred.request_id import new_request_id
from pyramid_deferred.scope import _current

if TYPE_CHECKING:
    from pyramid_deferred.watchdog import Watchdog

log = get_logger(__name__)

BATCH_ATTR = "deferred_task_batch"
"""The request attribute holding its batch."""


class Once:
    """Says yes to the first caller only, whichever thread it is on: ``list.pop()`` is one atomic
    step under the GIL, so a batch is claimed without a lock."""

    __slots__ = ("_token",)

    def __init__(self) -> None:
        self._token = [True]

    def claim(self) -> bool:
        try:
            return self._token.pop()
        except IndexError:
            return False

    @property
    def claimed(self) -> bool:
        return not self._token


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


@dataclass(eq=False)
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
    live: set[RequestBatch] | None = None
    """The app's batches from their scheduling to their report: what a stopping process decides
    (``pyramid_deferred.lifecycle``). Shared by the app's batches; each adds and removes itself."""
    durable_run: DurableRun | None = None
    """This request's view of the spill-over and the outbox (made when the batch is scheduled)."""
    _started: Once = field(default_factory=Once)
    """Run, discarded or abandoned: a batch starts at most once."""
    _reported: Once = field(default_factory=Once)
    """Its report goes to the observers at most once (the run's, or the stop's if it came first)."""

    def __post_init__(self) -> None:
        if not self.started:
            self.started = self.clock()

    def capture_context(self) -> None:
        """Keep a copy of the current context, in which this batch's runner is the current one.

        Called when the response leaves the app: that moment is ``scheduled_at``. From now on a
        process that stops decides this batch if it has not ended; its durable tasks that will run
        are in the outbox now (when one is configured), before the server sends the response."""
        self.scheduled_at = self.clock()
        run = self.open_durable_run()
        if run is not None:
            failed = self.request_failed  # a failed request runs its ``always`` tasks only
            run.record([(task, seq) for task, seq in self.runner.queued() if task.always or not failed])
        self.context = contextvars.copy_context()
        self.context.run(_current.set, self.runner)
        if self.live is not None:
            self.live.add(self)

    def open_durable_run(self) -> DurableRun | None:
        """This request's view of the spill-over (its durable tasks' keys), made once."""
        if self.spill_over is not None and self.durable_run is None:
            self.durable_run = self.runner.durable = self.spill_over.for_request(self.request_id)
        return self.durable_run

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
        """Run, discarded or abandoned: nothing more will start for this batch."""
        return self._started.claimed

    def run_once(self, trigger: Trigger | None = None) -> RunReport | None:
        """Run the batch unless it was already decided; never lets an ``Exception`` reach the server.

        The batch's request id is current during the run (:mod:`pyramid_deferred.core.log`):
        every record of the add-on's loggers carries it (``record.request_id``), and the app's
        own records can (``RequestIdFilter``, loguru's ``add_request_id`` patcher).
        """
        if not self._started.claim():
            return None
        if trigger is not None:
            self.trigger = trigger
        if self.context is not None:
            return self.context.run(self._run)
        return self._run()

    def abandon(self, why: str = "the process is stopping") -> list[str]:
        """The process stops (its grace ran out) with this batch not finished, whether it is queued,
        waiting for its trigger or running on another thread: every task not decided yet is decided
        now (durable ones spill, the others are discarded), the observers get the report of the
        whole batch, and the names of the lost tasks are returned (to be named at ERROR). A durable
        task still running spills too: its idempotency key, held by the run here until it ends or
        its lease expires, keeps the engine's copy from running while this one still might."""
        if not self._reported.claim():
            return []
        self._started.claim()  # a batch that had not started never will
        token = request_id_var.set(self.request_id)
        try:
            self.open_durable_run()
            report, lost = self.runner.stop(why)
            self.runner.close()
            self._report(report)
        finally:
            request_id_var.reset(token)
        return lost

    def discard_once(self, reason: str) -> RunReport | None:
        """Decide the batch without running anything: every task, ``always`` included, is discarded."""
        if not self._started.claim():
            return None
        self._reported.claim()
        token = request_id_var.set(self.request_id)
        try:
            report = self.runner.discard(reason)
            self.runner.close()
            self._report(report)
            return report
        finally:
            request_id_var.reset(token)

    def _report(self, report: RunReport | None) -> None:
        if report is not None:
            notify_observers(self, report)
        if self.live is not None:
            self.live.discard(self)
        if self.durable_run is not None:
            self.durable_run.settle()

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
        token = request_id_var.set(self.request_id)
        try:
            self.run_started_at = self.clock()
            self.open_durable_run()
            report: RunReport | None = None
            try:
                report = self.runner.run(
                    ceiling_seconds=self.ceiling_seconds(), request_failed=self.request_failed,
                    via=self.trigger.value,
                )
            except Exception:
                log.exception("Deferred task run failed")
            except BaseException:  # an interrupt on the main thread: the runner decided the rest
                if self._reported.claim():
                    self._report(self.runner.stop_report)
                raise
            finally:
                self.runner.close()
            if self._reported.claim():  # not if a stopping process reported it first
                self._report(report)
            return report
        finally:
            request_id_var.reset(token)

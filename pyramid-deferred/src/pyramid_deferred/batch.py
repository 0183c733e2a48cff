"""One request's deferred work, and the guarantee that it is decided exactly once.

A batch exists only for a request that deferred something (its first ``defer()`` makes it). Its
life, top-down, as :mod:`pyramid_deferred.tween` and :mod:`pyramid_deferred.dispatch` drive it:

1. made at the first ``defer()``; the response, once the app has it, is parked on it;
2. :meth:`RequestBatch.schedule` when the response leaves the app: its durable tasks go to the
   outbox, it joins the app's live batches (what a stopping process decides);
3. :meth:`RequestBatch.run_once` from its trigger (the body's ``close()``, the hand-off worker,
   uWSGI's after-request hook), or :meth:`discard_once` (a retried attempt), or :meth:`abandon`
   (the process stops): exactly one of them starts it;
4. its report goes to the observers once, and it leaves the live batches.

Nothing here imports Pyramid: the batch sees the request only through what the tween gives it.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

from pyramid_deferred.core import DeferredTaskRunner, RunReport
from pyramid_deferred.core.log import get_logger, request_id_var
from pyramid_deferred.durable import DurableRun, SpillOver
from pyramid_deferred.request_id import new_request_id
from pyramid_deferred.scope import _running_batch

if TYPE_CHECKING:
    ReportObserver = Callable[["RequestBatch", RunReport], object]

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


class BatchSettings(NamedTuple):
    """What an app's batches share (the hook builds it once; a test may build its own)."""

    hard_limit_seconds: float = 0.0
    clock: Callable[[], float] = time.monotonic
    observers: tuple[ReportObserver, ...] = ()
    watchdog: Any = None
    """Watches the live batches (started with the first one scheduled)."""
    spill_over: SpillOver | None = None
    live: set[RequestBatch] | None = None


class RequestBatch:
    """Binds a request's runner to the moment it must run; captured by value, not looked up later.

    By the time the server calls ``close()`` the request's threadlocals are gone, and a hand-off
    runs on another thread: the batch keeps the runner object, and for a run on another thread a
    copy of the request's context, so tasks see the request's context variables and reach their
    own request's runner (:func:`pyramid_deferred.current_runner`). The request id (on every log
    line of the run) and the report observers travel with it too.
    """

    # What a request may change, at its class-level default until it does: a batch is made with
    # five attributes (see :meth:`for_request`), on the path of every request that defers.
    request_failed = False
    transaction_committed: bool | None = None
    """None without pyramid_tm; False while its transaction is open, and if it was aborted."""
    scheduled = False
    """True once the run is attached to a trigger after the response; the safety net stays out."""
    response: Any = None
    """The response the app returned (parked by the tween until scheduling); None if an
    exception escaped."""
    context: contextvars.Context | None = None
    trigger = Trigger.DIRECT
    scheduled_at: float | None = None
    """``clock()`` when the response left the app and the batch was attached to its trigger."""
    run_started_at: float | None = None
    """``clock()`` when the run began: minus ``scheduled_at``, the wait the response's delivery took."""
    thread: threading.Thread | None = None
    """The thread running the batch, while it runs (the watchdog shows its stack)."""
    durable_run: DurableRun | None = None
    """This request's view of the spill-over and the outbox (made when first needed)."""
    _notes: dict[str, object] | None = None

    def __init__(
        self,
        runner: DeferredTaskRunner,
        *,
        hard_limit_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        started: float = 0.0,
        request_id: str | None = None,
        observers: Sequence[ReportObserver] = (),
        watchdog: Any = None,
        spill_over: SpillOver | None = None,
        live: set[RequestBatch] | None = None,
    ) -> None:
        app = BatchSettings(hard_limit_seconds, clock, tuple(observers), watchdog, spill_over, live)
        self._setup(runner, app, request_id or new_request_id(), started or clock())

    @classmethod
    def for_request(cls, runner: DeferredTaskRunner, app: BatchSettings, request_id: str | None,
                    started: float) -> RequestBatch:
        """The hook's way: the app's shared part built once, nothing checked again."""
        batch = object.__new__(cls)
        batch._setup(runner, app, request_id or new_request_id(), started or app.clock())
        return batch

    def _setup(self, runner: DeferredTaskRunner, app: BatchSettings, request_id: str, started: float) -> None:
        self.runner = runner
        self.app = app
        self.request_id = request_id
        self.started = started
        self._started = Once()
        """Run, discarded or abandoned: a batch starts at most once."""
        self._reported = Once()
        """Its report goes to the observers at most once (the run's, or the stop's if it came first)."""

    @property
    def notes(self) -> dict[str, object]:
        """What add-ons note about the request for the observers, which never see the request
        (``pyramid_deferred.tracing``: the request's span; ``pyramid_deferred.dashboard``: its line)."""
        notes = self._notes
        if notes is None:
            self._notes = notes = {}
        return notes

    @property
    def clock(self) -> Callable[[], float]:
        return self.app.clock

    @property
    def hard_limit_seconds(self) -> float:
        """Seconds the request may live in total (a server's kill timeout); 0 = no hard limit."""
        return self.app.hard_limit_seconds

    @property
    def observers(self) -> tuple[ReportObserver, ...]:
        return self.app.observers

    @property
    def spill_over(self) -> SpillOver | None:
        """Where this request's durable tasks go instead of being lost (None: spill-over off)."""
        return self.app.spill_over

    @property
    def live(self) -> set[RequestBatch] | None:
        """The app's batches from their scheduling to their report: what a stopping process decides
        (``pyramid_deferred.lifecycle``) and what the watchdog watches."""
        return self.app.live

    def schedule(self, *, copy_context: bool) -> None:
        """The response leaves the app, and the batch is attached to its trigger: that moment is
        ``scheduled_at``. Its durable tasks that will run go to the outbox now (when one is set),
        before the server sends the response; from now on a process that stops decides this
        batch if it has not ended. ``copy_context``: the batch will run on another thread, in a
        copy of this one's context (the request's context variables)."""
        self.scheduled = True
        self.scheduled_at = self.clock()
        run = self.open_durable_run()
        if run is not None:
            failed = self.request_failed  # a failed request runs its ``always`` tasks only
            run.record([(task, seq) for task, seq in self.runner.queued() if task.always or not failed])
        if copy_context:
            self.context = contextvars.copy_context()
        app = self.app
        live = app.live
        if live is not None:
            live.add(self)
            watchdog = app.watchdog
            if watchdog is not None:
                watchdog.watch(live)

    def open_durable_run(self) -> DurableRun | None:
        """This request's view of the spill-over (its durable tasks' keys), made once."""
        spill_over = self.app.spill_over
        if spill_over is not None and self.durable_run is None:
            self.durable_run = self.runner.durable = spill_over.for_request(self.request_id)
        return self.durable_run

    def ceiling_seconds(self) -> float | None:
        """What the hard limit leaves of this request's life, right now (the spec's table)."""
        limit = self.app.hard_limit_seconds
        if not limit:
            return None
        return limit - (self.app.clock() - self.started)

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

        Every log record written during the run (the runner's, the tasks', the observers')
        carries ``extra["request_id"]``.
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
        token = request_id_var.set(self.request_id)  # another thread's batch: say whose lines these are
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
        if not self._started.claim() or not self._reported.claim():
            return None
        token = request_id_var.set(self.request_id)
        try:
            report = self.runner.discard(reason)
            self.runner.close()
            self._report(report)
            return report
        finally:
            request_id_var.reset(token)

    def _report(self, report: RunReport | None) -> None:
        """The batch is over: its observers hear of it (each one isolated), it leaves the live
        batches, and its outbox entries whose fate is final are cleared."""
        if report is not None:
            for observer in self.observers:
                try:
                    observer(self, report)
                except Exception:
                    log.exception("Deferred task observer %r failed", observer)
        live = self.live
        if live is not None:
            live.discard(self)
        if self.durable_run is not None:
            self.durable_run.settle()

    def _run(self) -> RunReport | None:
        self.thread = threading.current_thread()
        self.run_started_at = self.clock()
        self.open_durable_run()
        token = _running_batch.set(self)  # the runner for current_runner(), the id for log lines
        try:
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
                self.thread = None
            if self._reported.claim():  # not if a stopping process reported it first
                self._report(report)
            return report
        finally:
            _running_batch.reset(token)

"""Queue, order and budget: the whole of the deferred-task runner."""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import ClassVar, TypeVar

from pyramid_deferred.core.costs import CostModel
from pyramid_deferred.core.durable import DurableCall, DurableHooks, ServiceDown
from pyramid_deferred.core.log import NOTICE, get_logger, without_locals
from pyramid_deferred.core.report import DECLARED, OBSERVED, TRIAL, Outcome, RunReport, TaskResult
from pyramid_deferred.core.task import DeferredTask, check_name, default_name, is_finite, unchecked

log = get_logger(__name__)
Clock = Callable[[], float]
T = TypeVar("T")
_Entry = tuple[int, int, DeferredTask]  # (-priority, sequence, task): heap order is the run order
_INF = math.inf
_DEBUG = logging.DEBUG
_INFO = logging.INFO
_EXECUTED = Outcome.EXECUTED
_new_result: Callable[[type[TaskResult], tuple[object, ...]], TaskResult] = tuple.__new__
"""A TaskResult from fields the run already holds, without the named tuple's own ``__new__``
(a Python function: a third of a microsecond per task)."""
_SPILLED = Outcome.SPILLED
_ADMITTED_BY = {
    OBSERVED: ", admitted on its observed cost",
    TRIAL: ", admitted on trial: its cost is being learned",
}


class LazyExecutor(Executor):
    """An executor made on first submit, so that a runner can hold one before any thread exists."""

    def __init__(self, make: Callable[[], Executor]) -> None:
        self._make = make

    def submit(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> Future[T]:
        return self._make().submit(fn, *args, **kwargs)


_FLOAT_MAX = sys.float_info.max
_MAX_KNOWN_NAMES = 4096
_SETTLE_SECONDS = 0.1
DEFAULT_MAX_TASKS = 1000
OVERRUN_WARNING_INTERVAL_SECONDS = 60.0
_known_names: set[str] = set()
"""Names already validated: task names are a small static set (``meta.purchase``), so
``defer()`` checks each name's characters once per process, not once per call."""


def is_interrupt(error: BaseException) -> bool:
    """A signal to the process (Ctrl-C, a server's SystemExit), not a task's own failure.

    Signals reach only the main thread: there, KeyboardInterrupt and SystemExit stop the run.
    Anywhere else, whatever a task raises (those included) is that task's failure.
    """
    signal_like = isinstance(error, KeyboardInterrupt | SystemExit)
    return signal_like and threading.current_thread() is threading.main_thread()


class OverrunWarnings:
    """At most one overrun WARNING per task name per interval, per process; the next one says
    how many were held back (a task that always overruns must not flood the log)."""

    def __init__(self, interval_seconds: float = OVERRUN_WARNING_INTERVAL_SECONDS) -> None:
        self.interval_seconds = interval_seconds
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def should_warn(self, name: str, now: float) -> int | None:
        """None to stay quiet; else the number of overruns held back since the last warning."""
        with self._lock:
            last = self._last.get(name)
            if last is not None and now - last[0] < self.interval_seconds:
                self._last[name] = (last[0], last[1] + 1)
                return None
            if last is None and len(self._last) >= _MAX_KNOWN_NAMES:
                self._last.clear()
            self._last[name] = (now, 0)
            return 0 if last is None else last[1]


def check_budget(budget_seconds: object, *, parameter: str = "budget_seconds") -> float:
    if type(budget_seconds) is float and 0 <= budget_seconds < _INF:  # the common case, fast
        return budget_seconds
    if isinstance(budget_seconds, bool) or not isinstance(budget_seconds, int | float):
        raise TypeError(f"{parameter} must be a number of seconds, got {type(budget_seconds).__name__}")
    if not is_finite(budget_seconds) or budget_seconds < 0:
        raise ValueError(f"{parameter} must be a finite number >= 0 (0 = unlimited), got {budget_seconds!r}")
    return float(budget_seconds)


class DeferredTaskRunner:
    """Holds one request's deferred tasks and runs them, highest priority first, within a budget.

    One runner belongs to one request: the hook creates it when the request starts and calls
    :meth:`run` once the server has sent the response. Not meant to be shared between threads.
    """

    PRIORITY_CRITICAL: ClassVar[int] = 100
    PRIORITY_NORMAL: ClassVar[int] = 50
    PRIORITY_LOW: ClassVar[int] = 10

    # One request's state, each field at its class-level default until the request uses it: a
    # request that defers nothing pays for no field (see :meth:`spawn`); lists are made on use.
    on_first_task: Callable[[DeferredTaskRunner], object] | None = None
    """Called once, with the runner, when its first task is queued: the hook does its per-request
    set-up only for requests that defer something."""
    owner: object = None
    """What the runner belongs to, for ``on_first_task`` (the hook keeps the request there while
    its view runs); None once the owner let go of it."""
    durable: DurableHooks | None = None
    """The spill-over for this request's durable tasks (set by its batch before the run); None:
    durable tasks fare like any other (skipped, failed: logged, not handed over)."""
    _queue: list[_Entry] | None = None
    _next_sequence = 0
    """The next task's place in the request (with the request id and the name, a durable task's key)."""
    _forgotten: list[TaskResult] | None = None
    """Tasks decided before the run (forgotten, replaced); during a run, the run's results."""
    _accepted = 0
    _refused = 0
    _closed = False
    _running = False
    _current: _Entry | None = None
    _current_started = 0.0
    _run_started = 0.0
    _in_flight: dict[int, tuple[DeferredTask, Future[TaskResult] | None]] | None = None
    """Concurrent tasks submitted to the pool and not yet in the run's results, by sequence."""
    _stop_report: RunReport | None = None
    """Set when :meth:`stop` (or an interrupt) decided the run's remaining tasks: the final word."""
    _final_report: RunReport | None = None
    """The last run's own report, once it ended (what a late :meth:`stop` returns)."""
    _run_results: list[TaskResult] | None = None
    """The results list of the run going on (the one ``_drain`` appends to)."""
    _lock: threading.Lock | None = None
    """Guards the queue while concurrent tasks run (they may defer more work)."""
    _trial_made = False
    _debug = False
    _spawn_class: type[DeferredTaskRunner] | None = None

    def __init__(
        self,
        *,
        enabled: bool = True,
        budget_seconds: float = 10.0,
        logger: logging.Logger = log,
        clock: Clock = time.monotonic,
        max_tasks: int = DEFAULT_MAX_TASKS,
        overrun_warnings: OverrunWarnings | None = None,
        executor: Executor | None = None,
        cost_model: CostModel | None = None,
    ) -> None:
        """``overrun_warnings``: shared by an app's runners, so that the rate limit holds across
        requests (the hook passes its own); by default each runner limits its own run.
        ``executor``: where tasks deferred with ``concurrent=True`` run side by side (without
        one they run one after the other). ``cost_model``: what tasks' recent runs took, so
        that admission against the budget may use it (see :mod:`pyramid_deferred.core.costs`)."""
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
        if isinstance(max_tasks, bool) or not isinstance(max_tasks, int) or max_tasks < 1:
            raise ValueError(f"max_tasks must be an int >= 1, got {max_tasks!r}")
        self._enabled = enabled
        self._max_tasks = max_tasks
        self._overrun_warnings = OverrunWarnings() if overrun_warnings is None else overrun_warnings
        self._budget_seconds = check_budget(budget_seconds)
        self._logger = logger
        self._clock = clock
        self._executor = executor
        self._cost_model = cost_model

    def spawn(
        self, on_first_task: Callable[[DeferredTaskRunner], object] | None = None
    ) -> DeferredTaskRunner:
        """A new, empty runner with this one's settings, without checking them again: the hook
        builds each request's runner this way. The settings are class attributes of a subclass made
        once per prototype, so a new runner is one object with an empty ``__dict__``: a request that
        defers nothing pays for nothing more. ``on_first_task``: the same for every spawned runner."""
        cls = self._spawn_class
        if cls is None:
            fields = {name: value for name, value in vars(self).items() if name != "on_first_task"}
            if on_first_task is not None:
                fields["on_first_task"] = staticmethod(on_first_task)
            cls = type(type(self).__name__, (type(self),), fields)
            self._spawn_class = cls
        return object.__new__(cls)

    @property
    def enabled(self) -> bool:
        """False means legacy mode: the hook runs tasks inline, before the response, unbudgeted."""
        return self._enabled

    @property
    def budget_seconds(self) -> float:
        return self._budget_seconds

    def defer(
        self,
        task: Callable[[], object],
        *,
        max_cost_seconds: float,
        priority: int = PRIORITY_NORMAL,
        name: str | None = None,
        always: bool = False,
        unique: bool = False,
        concurrent: bool = False,
    ) -> None:
        """Queue ``task`` to run after the response.

        ``max_cost_seconds`` is the worst case the budget relies on; ``always`` runs the task
        even when the request failed; ``unique`` replaces an already queued task of that name;
        ``concurrent`` lets it run beside the request's other concurrent tasks (independent I/O
        such as HTTP calls), on the app's bounded pool, each in a copy of the request's context.
        Beyond ``max_tasks`` in one run (a task that keeps deferring itself, say) a task is
        refused: not queued, counted in the run's report, with one WARNING per run.
        """
        if self._closed:
            raise RuntimeError(
                "this runner's tasks already ran (its request is over): a task deferred now would never "
                "run. Outside a request, use `with pyramid_deferred.deferred_scope():`"
            )
        if name is None:
            if not callable(task):
                raise TypeError(f"task must be a zero-argument callable, got {type(task).__name__}")
            name = default_name(task)
        cost_type = type(max_cost_seconds)
        if (
            (cost_type is float or cost_type is int)
            and 0 <= max_cost_seconds <= _FLOAT_MAX  # NaN, inf and ints beyond a float fail
            and type(priority) is int
            and type(always) is bool
            and type(unique) is bool
            and type(concurrent) is bool
            and type(name) is str
            and name in _known_names
            and callable(task)
        ):
            item = unchecked(DeferredTask, (task, max_cost_seconds, priority, name, always, concurrent))
        else:  # the slow path: full validation, errors naming the parameter
            item = DeferredTask(task, max_cost_seconds, priority, name, always, concurrent)
            if not isinstance(unique, bool):
                raise TypeError(f"unique must be a bool, got {type(unique).__name__}")
            if len(_known_names) < _MAX_KNOWN_NAMES:
                _known_names.add(name)
        if self._accepted >= self._max_tasks:
            self._refuse(name)
            return
        self._accepted += 1
        queue = self._queue
        if queue is None:  # the request's first task
            self._queue = queue = []
            first_task = self.on_first_task
            if first_task is not None:
                self.on_first_task = None
                first_task(self)
        lock = self._lock
        if lock is None:
            if unique:
                self._remove(name, "replaced by a later unique task of the same name")
            sequence = self._next_sequence
            self._next_sequence = sequence + 1
            heapq.heappush(queue, (-priority, sequence, item))
            return
        with lock:  # a concurrent task deferring more work while the run goes on
            if unique:
                self._remove(name, "replaced by a later unique task of the same name")
            sequence = self._next_sequence
            self._next_sequence = sequence + 1
            heapq.heappush(queue, (-priority, sequence, item))

    def _refuse(self, name: str) -> None:
        self._refused += 1
        if self._refused == 1:
            self._logger.warning(
                "Refused deferred task %s: this run already holds %d tasks (max_tasks); further tasks "
                "are refused until it ends, and counted in its report",
                name, self._max_tasks,
            )

    def close(self) -> None:
        """The request is over: a later ``defer()`` raises instead of queuing work nobody runs."""
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def forget(self, name: str) -> int:
        """Cancel the queued tasks called ``name``; returns how many were cancelled."""
        return self._remove(check_name(name), "forgotten")

    def has_tasks(self) -> bool:
        return bool(self._queue)

    def pending(self) -> tuple[DeferredTask, ...]:
        """The queued tasks in the order :meth:`run` would consider them."""
        return tuple(entry[2] for entry in sorted(self._queue or ()))

    def queued(self) -> list[tuple[DeferredTask, int]]:
        """The queued tasks with their sequence (their place in the request: with the request id
        and the name, a durable task's idempotency key), in run order."""
        return [(entry[2], entry[1]) for entry in sorted(self._queue or ())]

    @property
    def current_task(self) -> DeferredTask | None:
        """The task :meth:`run` is executing right now (read from another thread at shutdown)."""
        current = self._current
        return None if current is None else current[2]

    @property
    def stop_report(self) -> RunReport | None:
        """The report :meth:`stop` made (a stop from another thread, or an interrupt), if any."""
        return self._stop_report

    @property
    def current_task_started(self) -> float:
        """When the current task started (a ``clock()`` reading): a watchdog's starting point."""
        return self._current_started

    def run(
        self, *, ceiling_seconds: float | None = None, request_failed: bool = False, via: str = "run()"
    ) -> RunReport:
        """Run every queued task, highest priority first, and report what became of each.

        ``ceiling_seconds`` is the time the process may still spend on this request (a server's
        hard timeout minus what the request used); the effective budget is the tighter of it and
        the configured budget. With ``request_failed`` only tasks deferred with ``always=True``
        run; the others are discarded and logged. ``via`` names what ran it, for the log.
        """
        if self._running:
            raise RuntimeError("run() is already running for this runner; tasks may defer(), not run()")
        if not self._queue and not self._forgotten and not self._refused:
            return RunReport(budget_seconds=self._effective_budget(ceiling_seconds), deferred=0)
        limit = self._effective_budget(ceiling_seconds)
        ceiling = _INF if ceiling_seconds is None or not self._enabled else max(ceiling_seconds, 0.0)
        results = self._forgotten  # a task that forgets or replaces during the run reports here too
        if results is None:
            self._forgotten = results = []
        self._run_results = results
        self._run_started = self._clock()
        # One check per run: the DEBUG lines (this one, each task's) are built only if the
        # logger is enabled for DEBUG (a DEBUG call per task would cost ~0.5 us).
        logger = self._logger
        debug = logger.isEnabledFor(_DEBUG)
        if debug:
            logger.debug(
                "Running %d deferred task(s) via %s: %s", len(self._queue or ()), via, self._pending_names()
            )
        self._trial_made = False
        self._running = True
        try:
            budget = _INF if limit is None else limit
            elapsed = self._drain(results, budget, ceiling, request_failed, debug)
            report = RunReport(tuple(results), elapsed, limit, self._refused, self._accepted)
            self._final_report = report  # before the counters reset: a late stop() finds the run over
        finally:
            self._running = False
            self._lock = None
            self._forgotten = None
            self._refused = self._accepted = 0
        if self._stop_report is not None:  # stopped from another thread: its report is the run's
            return self._stop_report
        # A run where every task executed is routine: its summary is DEBUG (each task's own line
        # is too); anything else is INFO. Not looked at below INFO (DEBUG implies INFO); the
        # report is formatted (``RunReport.__str__``) only if a handler takes the record.
        if logger.isEnabledFor(_INFO):
            routine = not report.refused and all(result.outcome is _EXECUTED for result in results)
            logger.log(_DEBUG if routine else _INFO, "Deferred tasks done %s", report)
        return report

    def _pending_names(self) -> str:
        return ", ".join(task.name for task in self.pending())

    def discard(self, reason: str) -> RunReport:
        """Decide every queued task without running it, ``always`` included, in one INFO line.

        For a request attempt whose response the client never gets (pyramid_retry retries it).
        """
        if self._running:
            raise RuntimeError("discard() while run() is running; tasks may defer(), not discard()")
        discarded = [_result(entry[2], Outcome.DISCARDED) for entry in sorted(self._queue or ())]
        if self._queue:
            self._queue.clear()
        results = (self._forgotten or []) + discarded
        self._forgotten = None
        refused, self._refused = self._refused, 0
        accepted, self._accepted = self._accepted, 0
        if discarded:
            self._logger.info(
                "Discarded %d deferred task(s) (%s): %s",
                len(discarded), ", ".join(result.name for result in discarded), reason,
            )
        return RunReport(tuple(results), 0.0, None, refused, accepted)

    def _effective_budget(self, ceiling_seconds: float | None) -> float | None:
        """The spec's time-limit table: the tighter of budget and ceiling; 0 budget = no budget."""
        budget = self._budget_seconds or None if self._enabled else None
        if ceiling_seconds is None or not self._enabled:
            return budget
        ceiling = check_budget(max(ceiling_seconds, 0.0), parameter="ceiling_seconds")
        return ceiling if budget is None else min(budget, ceiling)

    def _admission(
        self, name: str, cost: float, elapsed: float, limit: float, ceiling: float
    ) -> tuple[str | None, float]:
        """Which bound admits the task now (``declared``/``observed``), or None; and the time left.

        Against the budget, the bound learned from the task's recent runs may stand in for a
        higher declared cost; against the hard limit's ceiling, only the declared cost does.
        """
        remaining = limit - elapsed
        if cost > ceiling - elapsed:
            return None, min(remaining, ceiling - elapsed)
        if remaining > 0 and cost <= remaining:
            return DECLARED, remaining
        model = self._cost_model
        if model is None or remaining <= 0:
            return None, remaining
        observed = model.bound(name)
        if observed is not None:
            return (OBSERVED if observed <= remaining else None), remaining
        if model.wants_samples(name) and not self._trial_made:
            # Never run, never learned: once per run, a task the hard limit allows is tried, so
            # that a tight budget does not keep skipping (and never learning) it.
            self._trial_made = True
            return TRIAL, remaining
        return None, remaining

    def _skip(self, results: list[TaskResult], item: DeferredTask, remaining: float) -> None:
        name, priority, cost = item.name, item.priority, item.max_cost_seconds
        results.append(TaskResult(name, priority, cost, Outcome.SKIPPED))
        model = self._cost_model
        observed = model.bound(name) if model is not None else None
        learned = f" (observed {observed:.3f}s over its recent runs)" if observed is not None else ""
        self._logger.log(
            NOTICE,
            "Skipped deferred task %s (priority %d): cost %ss%s > %.3fs of budget left",
            name, priority, cost, learned, max(remaining, 0.0),
        )

    def _drain(
        self, results: list[TaskResult], limit: float, ceiling: float, request_failed: bool, debug: bool
    ) -> float:
        clock = self._clock
        log = self._logger
        append = results.append
        queue = self._queue
        durable = self.durable
        pop = heapq.heappop
        new_result = _new_result
        model = self._cost_model
        budgeted = limit != _INF or ceiling != _INF
        started = now = clock()  # one clock reading per task: a task's end is the next one's start
        in_flight: list[tuple[int, Future[TaskResult]]] = []
        item: DeferredTask | None = None
        try:
            while True:
                while True:
                    lock = self._lock  # set once a concurrent task is in flight
                    if lock is None:
                        if not queue:
                            break
                        entry = pop(queue)
                    else:
                        with lock:
                            if not queue:
                                break
                            entry = pop(queue)
                    item, sequence = entry[2], entry[1]
                    task, cost, priority, name, always, concurrent = item
                    if request_failed and not always:
                        append(TaskResult(name, priority, cost, Outcome.DISCARDED))
                        log.info("Discarded deferred task %s because the request failed", name)
                        continue
                    # Durable tasks (a DurableCall) with a spill-over: handed over, not lost.
                    spill = durable if durable is not None and type(task) is DurableCall else None
                    if spill is not None:
                        down_for = spill.service_down(task)  # type: ignore[arg-type]
                        if down_for is not None:
                            spilled = spill.spill(
                                item, sequence, "service_down", countdown=down_for,
                                detail=f"its service's circuit is open for {down_for:.1f}s more",
                            )
                            now = clock()  # the hand-over's time counts against the budget
                            if spilled:
                                append(TaskResult(name, priority, cost, _SPILLED))
                                continue
                    admitted_by: str | None = DECLARED
                    if budgeted:
                        if in_flight:
                            now = clock()
                        elapsed = now - started
                        remaining = limit - elapsed
                        if not (remaining > 0 and cost <= remaining and cost <= ceiling - elapsed):
                            admitted_by, remaining = self._admission(name, cost, elapsed, limit, ceiling)
                            if admitted_by is None:
                                if spill is not None and spill.spill(
                                    item, sequence, "skipped",
                                    detail=f"cost {cost}s > {max(remaining, 0.0):.3f}s of budget left",
                                ):
                                    now = clock()
                                    append(TaskResult(name, priority, cost, _SPILLED))
                                    continue
                                self._skip(results, item, remaining)
                                continue
                    if spill is not None:
                        task = spill.guard(item, sequence)
                    if concurrent and self._executor is not None:
                        in_flight.append((sequence, self._submit(
                            item, task, sequence, admitted_by, started, limit, ceiling, debug
                        )))
                        continue
                    # A task's result is recorded before it stops being current, so that a stop
                    # from another thread (:meth:`stop`) finds it in one place or the other.
                    self._current_started = now
                    self._current = entry
                    try:
                        task()
                    except BaseException as error:
                        if is_interrupt(error):
                            raise
                        end = clock()
                        append(self._failed(item, sequence, end - now, error, admitted_by))
                        self._current = None
                        now = clock() if spill is not None else end
                        continue
                    end = clock()
                    duration = end - now
                    now = end
                    append(new_result(TaskResult, (name, priority, cost, _EXECUTED, duration, None,
                                                   admitted_by)))
                    self._current = None
                    if debug or duration > cost or model is not None:
                        self._executed(item, duration, end, admitted_by, debug)
                item = None
                if not in_flight:
                    break
                submitted = self._in_flight
                for sequence, future in in_flight:  # the run ends when its admitted tasks have ended
                    append(future.result())  # in the order they were admitted
                    if submitted is not None:
                        submitted.pop(sequence, None)
                in_flight.clear()
                now = clock()  # concurrent tasks may have deferred more: drain again
        except BaseException:
            self._interrupted(item)
            raise
        return now - started

    def _interrupted(self, item: DeferredTask | None) -> None:
        """Ctrl-C or a server's SystemExit in the task running on the main thread: what is left
        is decided now (durable tasks spill, the others are named at ERROR), then it propagates."""
        _, lost = self.stop("the run was interrupted", interrupted=item)
        self._current = None
        self._logger.error(
            "Deferred task %s was interrupted; abandoning %d queued task(s): %s",
            item.name if item else "?", len(lost), ", ".join(lost) or "none",
        )

    def _executed(
        self, item: DeferredTask, duration: float, end: float, admitted_by: str | None, debug: bool
    ) -> TaskResult:
        name, cost = item.name, item.max_cost_seconds
        if self._cost_model is not None:
            self._cost_model.record(name, duration)
        if debug:
            self._logger.debug(
                "Ran deferred task %s (priority %d, cost %ss%s) in %.3fs", name, item.priority, cost,
                _ADMITTED_BY.get(admitted_by or DECLARED, ""), duration,
            )
        if duration > cost:
            held_back = self._overrun_warnings.should_warn(name, end)
            if held_back is not None:
                self._logger.warning(
                    "Deferred task %s overran its declared cost: took %.3fs, declared %ss%s",
                    name, duration, cost,
                    f" ({held_back} more overruns of it since the last warning)" if held_back else "",
                )
        return TaskResult(name, item.priority, cost, Outcome.EXECUTED, duration, None, admitted_by)

    def _failed(
        self, item: DeferredTask, sequence: int, duration: float, error: BaseException,
        admitted_by: str | None,
    ) -> TaskResult:
        """A task that raised: handed over if it is durable and a spill-over takes it, else logged."""
        name = item.name
        if self._cost_model is not None:
            self._cost_model.record(name, duration)
        durable = self.durable
        if durable is not None and type(item.task) is DurableCall and durable.spill(
            item, sequence, "service_down" if isinstance(error, ServiceDown) else "failed",
            detail=f"failed after {duration:.3f}s", error=error,
            countdown=error.retry_after if isinstance(error, ServiceDown) else 0.0,
        ):
            outcome = _SPILLED
        else:
            outcome = Outcome.FAILED
            # A durable task's arguments are data (a buyer's e-mail): its traceback without frames.
            trace = without_locals(error) if type(item.task) is DurableCall else error
            self._logger.error("Deferred task %s failed after %.3fs", name, duration, exc_info=trace)
        return TaskResult(name, item.priority, item.max_cost_seconds, outcome, duration, error, admitted_by)

    def _submit(
        self, item: DeferredTask, call: Callable[[], object], sequence: int, admitted_by: str | None,
        started: float, limit: float, ceiling: float, debug: bool,
    ) -> Future[TaskResult]:
        """Run ``item`` on the executor, in a copy of this context (its request's id, its runner)."""
        if self._lock is None:
            self._lock = threading.Lock()
        submitted = self._in_flight
        if submitted is None:
            self._in_flight = submitted = {}
        submitted[sequence] = (item, None)  # in flight from now on, for a stop on another thread
        context = contextvars.copy_context()
        assert self._executor is not None
        future = self._executor.submit(
            context.run, self._run_concurrent, item, call, sequence, admitted_by, started, limit, ceiling,
            debug,
        )
        submitted[sequence] = (item, future)
        return future

    def _run_concurrent(
        self, item: DeferredTask, call: Callable[[], object], sequence: int, admitted_by: str | None,
        started: float, limit: float, ceiling: float, debug: bool,
    ) -> TaskResult:
        """On a pool thread: admitted again when it really starts (the pool may have been busy
        with other requests' tasks), then run and reported like any other task. One the pool
        starts after the process began stopping is not run: :meth:`stop` decided it."""
        if self._stop_report is not None:
            return _result(item, Outcome.DISCARDED)
        clock = self._clock
        begin = clock()
        if limit != _INF or ceiling != _INF:
            cost, elapsed = item.max_cost_seconds, begin - started
            if admitted_by == TRIAL:  # its run's one trial: kept while the hard limit allows it
                remaining = limit - elapsed
                if remaining <= 0 or cost > ceiling - elapsed:
                    admitted_by = None
            else:
                admitted_by, remaining = self._admission(item.name, cost, elapsed, limit, ceiling)
            if admitted_by is None:
                durable = self.durable
                if durable is not None and type(item.task) is DurableCall and durable.spill(
                    item, sequence, "skipped",
                    detail=f"cost {cost}s > {max(remaining, 0.0):.3f}s of budget left",
                ):
                    return TaskResult(item.name, item.priority, cost, _SPILLED)
                skipped: list[TaskResult] = []
                self._skip(skipped, item, remaining)
                return skipped[0]
        try:
            call()
        except BaseException as error:  # a pool thread: whatever the task raises is its failure
            return self._failed(item, sequence, clock() - begin, error, admitted_by)
        end = clock()
        return self._executed(item, end - begin, end, admitted_by, debug)

    def stop(self, why: str, *, interrupted: DeferredTask | None = None) -> tuple[RunReport, list[str]]:
        """Decide now every task of this runner that is not decided yet, and report the whole run.

        For a process that stops (its grace ran out) or a run interrupted on the main thread:
        each queued task, and each still running on another thread (inline, or on the concurrent
        pool), is spilled if it is durable and a spill-over takes it, else discarded; ``why`` says
        so in the spill's log line. Returns the run's report (what already ran included; the run,
        if it goes on, returns this one too) and the names of the tasks that are lost.

        Safe from any thread while :meth:`run` goes on: each queued task is taken by exactly one
        side (one ``heappop`` each, atomic under the GIL); the run picks up nothing more, and a task
        it is running is decided here, once (its idempotency key keeps a spilled copy from running
        while this one still might).
        """
        self._closed = True
        decided: list[TaskResult] = []
        lost: list[str] = []
        queue = self._queue or []
        with self._lock or contextlib.nullcontext():
            while True:
                try:
                    _, sequence, item = heapq.heappop(queue)
                except IndexError:
                    break
                decided.append(self._give_up(item, sequence, why, lost, running=False))
        results, running, accepted = self._settled(len(decided))
        for item, sequence in running:  # an interrupted task is named by the caller, not as lost
            named = [] if item is interrupted else lost
            decided.append(self._give_up(item, sequence, why, named, running=True))
        elapsed = self._clock() - self._run_started if self._running else 0.0
        report = RunReport(
            (*results, *decided), elapsed, self._effective_budget(None), self._refused, accepted,
        )
        self._stop_report = report
        return report, lost

    def _settled(self, withdrawn: int) -> tuple[list[TaskResult], list[tuple[DeferredTask, int]], int]:
        """The run's results so far, its running tasks and how many tasks it accepted, read when
        they account for every accepted task: a task moves from current (or in flight) to the
        results in a few bytecodes, so a reading in between is taken again (for at most a tenth of
        a second). A run that ended meanwhile answers with its own report's results."""
        deadline = time.monotonic() + _SETTLE_SECONDS
        while True:
            final = self._final_report
            if final is not None:
                return list(final.results), [], final.deferred or 0
            accepted = self._accepted
            running: list[tuple[DeferredTask, int]] = []
            current = self._current
            if current is not None:
                running.append((current[2], current[1]))
            results = list((self._run_results if self._running else self._forgotten) or ())
            in_flight = self._in_flight
            for sequence, (task, future) in list((in_flight or {}).items()):
                if future is not None and future.done() and not future.cancelled():
                    results.append(future.result())  # it ended; the run had not collected it yet
                else:
                    running.append((task, sequence))
            if len(results) + withdrawn + len(running) == accepted or time.monotonic() > deadline:
                return results, running, accepted
            time.sleep(0.0005)

    def _give_up(
        self, item: DeferredTask, sequence: int, why: str, lost: list[str], *, running: bool
    ) -> TaskResult:
        durable = self.durable
        if durable is not None and type(item.task) is DurableCall and durable.spill(
            item, sequence, "shutdown", detail=f"still {'running' if running else 'queued'}: {why}",
        ):
            return _result(item, _SPILLED)
        lost.append(f"{item.name} (still running)" if running else item.name)
        return _result(item, Outcome.DISCARDED)

    def _remove(self, name: str, reason: str) -> int:
        queue = self._queue
        if not queue:
            return 0
        kept = [entry for entry in queue if entry[2].name != name]
        removed = len(queue) - len(kept)
        if removed:
            forgotten = self._forgotten
            if forgotten is None:
                self._forgotten = forgotten = []
            for entry in queue:
                if entry[2].name == name:
                    forgotten.append(_result(entry[2], Outcome.FORGOTTEN))
            heapq.heapify(kept)
            queue[:] = kept
            self._logger.info("Deferred task %s (%d queued) %s", name, removed, reason)
        return removed

def _result(item: DeferredTask, outcome: Outcome, duration: float | None = None) -> TaskResult:
    return TaskResult(item.name, item.priority, item.max_cost_seconds, outcome, duration)

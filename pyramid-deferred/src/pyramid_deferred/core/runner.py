"""Queue, order and budget: the whole of the deferred-task runner."""

from __future__ import annotations

import heapq
import itertools
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from pyramid_deferred.core.durable import DurableCall, DurableHooks, ServiceDown
from pyramid_deferred.core.log import NOTICE, deferred_task_logger
from pyramid_deferred.core.report import Outcome, RunReport, TaskResult
from pyramid_deferred.core.task import DeferredTask, check_name, default_name, is_finite, unchecked

if TYPE_CHECKING:
    from loguru import Logger

Clock = Callable[[], float]
_Entry = tuple[int, int, DeferredTask]  # (-priority, sequence, task): heap order is the run order
_INF = math.inf
_EXECUTED = Outcome.EXECUTED
_SPILLED = Outcome.SPILLED
_FLOAT_MAX = sys.float_info.max
_MAX_KNOWN_NAMES = 4096
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

    def __init__(
        self,
        *,
        enabled: bool = True,
        budget_seconds: float = 10.0,
        logger: Logger = deferred_task_logger,
        clock: Clock = time.monotonic,
        max_tasks: int = DEFAULT_MAX_TASKS,
        overrun_warnings: OverrunWarnings | None = None,
    ) -> None:
        """``overrun_warnings``: shared by an app's runners, so that the rate limit holds across
        requests (the hook passes its own); by default each runner limits its own run."""
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
        if isinstance(max_tasks, bool) or not isinstance(max_tasks, int) or max_tasks < 1:
            raise ValueError(f"max_tasks must be an int >= 1, got {max_tasks!r}")
        self._enabled = enabled
        self._max_tasks = max_tasks
        self._accepted = 0
        self._refused = 0
        self._closed = False
        self._overrun_warnings = OverrunWarnings() if overrun_warnings is None else overrun_warnings
        self.on_first_task: Callable[[DeferredTaskRunner], object] | None = None
        """Called once, with the runner, when its first task is queued: the hook does its
        per-request set-up only for requests that defer something."""
        self._budget_seconds = check_budget(budget_seconds)
        self._logger = logger
        self._clock = clock
        self._queue: list[_Entry] = []
        self._sequence = itertools.count()
        self._forgotten: list[TaskResult] = []
        self._running = False
        self._current: DeferredTask | None = None
        self.durable: DurableHooks | None = None
        """The spill-over for this request's durable tasks (set by its batch before the run);
        None: durable tasks fare like any other (skipped, failed: logged, not handed over)."""

    def spawn(self) -> DeferredTaskRunner:
        """A new, empty runner with this one's settings, without checking them again: the hook
        builds each request's runner this way (about a third of the constructor's cost)."""
        new = object.__new__(type(self))
        fields = new.__dict__
        fields.update(self.__dict__)
        fields["_queue"] = []
        fields["_sequence"] = itertools.count()
        fields["_forgotten"] = []
        fields["_accepted"] = fields["_refused"] = 0
        fields["_closed"] = fields["_running"] = False
        fields["_current"] = fields["on_first_task"] = fields["durable"] = None
        return new

    def clock_is_not(self, clock: Clock) -> bool:
        return self._clock is not clock

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
    ) -> None:
        """Queue ``task`` to run after the response.

        ``max_cost_seconds`` is the worst case the budget relies on; ``always`` runs the task
        even when the request failed; ``unique`` replaces an already queued task of that name.
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
            and type(name) is str
            and name in _known_names
            and callable(task)
        ):
            item = unchecked(DeferredTask, (task, max_cost_seconds, priority, name, always))
        else:  # the slow path: full validation, errors naming the parameter
            item = DeferredTask(task, max_cost_seconds, priority, name, always)
            if not isinstance(unique, bool):
                raise TypeError(f"unique must be a bool, got {type(unique).__name__}")
            if len(_known_names) < _MAX_KNOWN_NAMES:
                _known_names.add(name)
        if self._accepted >= self._max_tasks:
            self._refuse(name)
            return
        self._accepted += 1
        if self.on_first_task is not None:
            first_task, self.on_first_task = self.on_first_task, None
            first_task(self)
        if unique:
            self._remove(name, "replaced by a later unique task of the same name")
        heapq.heappush(self._queue, (-priority, next(self._sequence), item))

    def _refuse(self, name: str) -> None:
        self._refused += 1
        if self._refused == 1:
            self._logger.warning(
                "Refused deferred task {}: this run already holds {} tasks (max_tasks); further tasks "
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
        return tuple(entry[2] for entry in sorted(self._queue))

    @property
    def current_task(self) -> DeferredTask | None:
        """The task :meth:`run` is executing right now (read from another thread at shutdown)."""
        return self._current

    def run(self, *, ceiling_seconds: float | None = None, request_failed: bool = False) -> RunReport:
        """Run every queued task, highest priority first, and report what became of each.

        ``ceiling_seconds`` is the time the process may still spend on this request (a server's
        hard timeout minus what the request used); the effective budget is the tighter of it and
        the configured budget. With ``request_failed`` only tasks deferred with ``always=True``
        run; the others are discarded and logged.
        """
        if self._running:
            raise RuntimeError("run() is already running for this runner; tasks may defer(), not run()")
        if not self._queue and not self._forgotten and not self._refused:
            return RunReport(budget_seconds=self._effective_budget(ceiling_seconds), deferred=0)
        limit = self._effective_budget(ceiling_seconds)
        results = self._forgotten  # a task that forgets or replaces during the run reports here too
        self._running = True
        try:
            elapsed = self._drain(results, _INF if limit is None else limit, request_failed)
        finally:
            self._running = False
            self._forgotten = []
            refused, self._refused = self._refused, 0
            accepted, self._accepted = self._accepted, 0
        report = RunReport(tuple(results), elapsed, limit, refused, accepted)
        # A run where every task executed is routine: its summary is DEBUG (each task's own line
        # is too); anything else is INFO. Formatted only if a sink takes the record.
        routine = not refused and all(result.outcome is _EXECUTED for result in results)
        self._logger.log("DEBUG" if routine else "INFO", "Deferred tasks done {}", report)
        return report

    def discard(self, reason: str) -> RunReport:
        """Decide every queued task without running it, ``always`` included, in one INFO line.

        For a request attempt whose response the client never gets (pyramid_retry retries it).
        """
        if self._running:
            raise RuntimeError("discard() while run() is running; tasks may defer(), not discard()")
        discarded = [_result(entry[2], Outcome.DISCARDED) for entry in sorted(self._queue)]
        self._queue.clear()
        results = self._forgotten + discarded
        self._forgotten = []
        refused, self._refused = self._refused, 0
        accepted, self._accepted = self._accepted, 0
        if discarded:
            self._logger.info(
                "Discarded {} deferred task(s) ({}): {}",
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

    def _drain(self, results: list[TaskResult], limit: float, request_failed: bool) -> float:
        clock = self._clock
        queue = self._queue
        log = self._logger
        append = results.append
        pop = heapq.heappop
        budgeted = limit != _INF
        durable = self.durable
        started = now = clock()  # one clock reading per task: a task's end is the next one's start
        item: DeferredTask | None = None
        try:
            while queue:
                entry = pop(queue)
                item = entry[2]
                task, cost, priority, name, always = item
                if request_failed and not always:
                    append(TaskResult(name, priority, cost, Outcome.DISCARDED))
                    log.info("Discarded deferred task {} because the request failed", name)
                    continue
                # Durable tasks (a DurableCall) with a spill-over: handed over, not lost.
                spill = durable if durable is not None and type(task) is DurableCall else None
                if spill is not None:
                    down_for = spill.service_down(task)  # type: ignore[arg-type]
                    if down_for is not None:
                        spilled = spill.spill(
                            item, entry[1], "service_down", countdown=down_for,
                            detail=f"its service's circuit is open for {down_for:.1f}s more",
                        )
                        now = clock()  # the hand-over's time counts against the budget
                        if spilled:
                            append(TaskResult(name, priority, cost, _SPILLED))
                            continue
                if budgeted:
                    remaining = limit - (now - started)
                    if remaining <= 0 or cost > remaining:
                        if spill is not None:
                            spilled = spill.spill(
                                item, entry[1], "skipped",
                                detail=f"cost {cost}s > {max(remaining, 0.0):.3f}s of budget left",
                            )
                            now = clock()
                            if spilled:
                                append(TaskResult(name, priority, cost, _SPILLED))
                                continue
                        append(TaskResult(name, priority, cost, Outcome.SKIPPED))
                        log.log(
                            NOTICE,
                            "Skipped deferred task {} (priority {}): cost {}s > {:.3f}s of budget left",
                            name, priority, cost, max(remaining, 0.0),
                        )
                        continue
                if spill is not None:
                    task = spill.guard(item, entry[1])
                self._current = item
                try:
                    task()
                except BaseException as error:
                    if is_interrupt(error):
                        raise
                    end = clock()
                    if spill is not None and spill.spill(
                        item, entry[1], "service_down" if isinstance(error, ServiceDown) else "failed",
                        detail=f"failed after {end - now:.3f}s", error=error,
                        countdown=error.retry_after if isinstance(error, ServiceDown) else 0.0,
                    ):
                        append(TaskResult(name, priority, cost, _SPILLED, end - now, error))
                        end = clock()
                    else:
                        append(TaskResult(name, priority, cost, Outcome.FAILED, end - now, error))
                        log.opt(exception=True).error(
                            "Deferred task {} failed after {:.3f}s", name, end - now
                        )
                    now = end
                    continue
                finally:
                    self._current = None
                end = clock()
                duration = end - now
                now = end
                append(TaskResult(name, priority, cost, Outcome.EXECUTED, duration))
                log.debug(
                    "Ran deferred task {} (priority {}, cost {}s) in {:.3f}s", name, priority, cost, duration
                )
                if duration > cost:
                    held_back = self._overrun_warnings.should_warn(name, end)
                    if held_back is not None:
                        log.warning(
                            "Deferred task {} overran its declared cost: took {:.3f}s, declared {}s{}",
                            name, duration, cost,
                            f" ({held_back} more overruns of it since the last warning)" if held_back else "",
                        )
            item = None
        except BaseException:
            abandoned = [entry[2].name for entry in sorted(queue)]
            queue.clear()
            log.error(
                "Deferred task {} was interrupted; abandoning {} queued task(s): {}",
                item.name if item else "?", len(abandoned), ", ".join(abandoned) or "none",
            )
            raise
        return now - started

    def withdraw(self, decide: Callable[[DeferredTask, int], Outcome]) -> list[DeferredTask]:
        """Take every queued task out now, each recorded with the outcome ``decide(task, sequence)``
        gives it; returns them in run order. For a process that stops with tasks still queued
        (the hand-off worker's shutdown): the durable ones are spilled. May be called from another
        thread while :meth:`run` is running: a task it pops meanwhile is run there, not here (the
        idempotency key of a spilled one keeps the two from both running it)."""
        entries = sorted(self._queue)
        self._queue.clear()
        withdrawn = []
        for entry in entries:
            self._forgotten.append(_result(entry[2], decide(entry[2], entry[1])))
            withdrawn.append(entry[2])
        return withdrawn

    def _remove(self, name: str, reason: str) -> int:
        kept = [entry for entry in self._queue if entry[2].name != name]
        removed = len(self._queue) - len(kept)
        if removed:
            for entry in self._queue:
                if entry[2].name == name:
                    self._forgotten.append(_result(entry[2], Outcome.FORGOTTEN))
            heapq.heapify(kept)
            self._queue[:] = kept
            self._logger.info("Deferred task {} ({} queued) {}", name, removed, reason)
        return removed

def _result(item: DeferredTask, outcome: Outcome, duration: float | None = None) -> TaskResult:
    return TaskResult(item.name, item.priority, item.max_cost_seconds, outcome, duration)

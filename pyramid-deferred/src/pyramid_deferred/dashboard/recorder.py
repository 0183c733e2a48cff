"""What the dashboard shows, kept in this process's memory and bounded: a ring buffer of the
latest runs, and per task name its counts by outcome and a window of measured times.

Framework-free: the observer (``pyramid_deferred.dashboard``) feeds :meth:`Recorder.observe` one
batch and its report after each run, from whichever thread ran it. When the page is shared
through Redis, each run is also handed to ``sink`` (the publisher's queue: it never blocks), and
the names whose statistics changed are noted for the publisher to take (:meth:`take_changes`).
"""

from __future__ import annotations

import math
import os
import re
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyramid_deferred.batch import RequestBatch
from pyramid_deferred.core import Outcome, RunReport

REQUEST_NOTE = "dashboard.request"
STATUS_NOTE = "dashboard.status"
SAMPLES_PER_NAME = 256
"""Measured times kept per task name for its percentiles (the latest ones)."""
FAR_BELOW_RATIO = 0.1
"""A declared cost ten times what the task takes (p99) wastes budget: later tasks get skipped."""
OVERRUN_TOLERANCE_SECONDS = 0.001
MIN_SAMPLES_FOR_FLAG = 5
OUTCOMES = tuple(outcome.value for outcome in Outcome)
_NOT_IN_HOST_NAMES = re.compile(r"[^A-Za-z0-9.-]")


def safe_text(text: str, limit: int) -> str:
    """One printable line, at most ``limit`` characters (it is shown, never parsed)."""
    clean = "".join(c if c.isprintable() else "\ufffd" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def host_name() -> str:
    """This machine's name as the page shows it beside a pid (letters, digits, ``.`` and ``-``)."""
    return _NOT_IN_HOST_NAMES.sub("-", socket.gethostname())[:64] or "localhost"


@dataclass(frozen=True, slots=True)
class TaskView:
    name: str
    priority: int
    max_cost_seconds: float
    outcome: str
    start_seconds: float | None
    """When the task started (or was decided), in seconds after the response left the app."""
    duration_seconds: float | None
    error: str | None
    """The exception's type for a failed task (its message may hold anything: not shown)."""


@dataclass(frozen=True, slots=True)
class RunView:
    number: int
    """The run's number in its process."""
    pid: int
    """The process that ran it."""
    request_id: str
    request: str
    status: int | None
    trigger: str
    finished_at: float
    """Epoch seconds."""
    wait_seconds: float | None
    """From the response leaving the app to the run starting."""
    elapsed_seconds: float
    budget_seconds: float | None
    refused: int
    tasks: tuple[TaskView, ...]
    host: str = ""
    """The machine of the process that ran it."""
    tasks_cut: int = 0
    """Tasks of the run left out when it was published (past the limit of one entry)."""


@dataclass(slots=True)
class NameStats:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES_PER_NAME))
    declared_cost: float = 0.0
    priority: int = 0


@dataclass(frozen=True, slots=True)
class NameSample:
    """One name's statistics as the publisher takes them: its counts and latest measured times."""

    name: str
    counts: dict[str, int]
    durations: tuple[float, ...]
    declared_cost: float
    priority: int


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed since the publisher last took it: the names to rewrite and the dropped ones."""

    names: tuple[NameSample, ...]
    dropped: tuple[str, ...]
    total_runs: int
    evicted_names: int


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``; None for no values."""
    if not values:
        return None
    rank = max(math.ceil(share * len(values)), 1)
    return values[rank - 1]


def cost_flag(declared: float, p99: float | None, samples: int) -> str | None:
    """``under``: the tasks take longer than declared (the budget cannot protect the run);
    ``far_above``: declared at least ten times what they take (they crowd out later tasks)."""
    if p99 is None:
        return None
    if p99 > declared + OVERRUN_TOLERANCE_SECONDS:
        return "under"
    if samples >= MIN_SAMPLES_FOR_FLAG and declared > 0 and p99 < declared * FAR_BELOW_RATIO:
        return "far_above"
    return None


class Recorder:
    def __init__(self, *, recent_runs: int, max_task_names: int, host: str | None = None) -> None:
        self.host = host_name() if host is None else host
        self.runs: deque[RunView] = deque(maxlen=recent_runs)
        self.max_task_names = max_task_names
        self.names: OrderedDict[str, NameStats] = OrderedDict()
        self.evicted_names = 0
        self.total_runs = 0
        self.sink: Callable[[RunView], None] | None = None
        """Where each run goes besides the ring buffer (the publisher's queue), when shared."""
        self._changed: set[str] = set()
        self._dropped: set[str] = set()
        self._lock = threading.Lock()

    def observe(self, batch: RequestBatch, report: RunReport) -> None:
        if not report.results and not report.refused:
            return
        run = self._view(batch, report)
        sink = self.sink
        with self._lock:
            self.total_runs += 1
            self.runs.append(run)
            for result in report.results:
                stats = self.names.get(result.name)
                if stats is None:
                    if len(self.names) >= self.max_task_names:
                        dropped, _ = self.names.popitem(last=False)  # the name seen least recently
                        self.evicted_names += 1
                        if sink is not None:
                            self._changed.discard(dropped)
                            self._dropped.add(dropped)
                    stats = self.names[result.name] = NameStats()
                else:
                    self.names.move_to_end(result.name)
                stats.counts[result.outcome.value] += 1
                stats.declared_cost = result.max_cost_seconds
                stats.priority = result.priority
                if result.duration_seconds is not None:
                    stats.durations.append(result.duration_seconds)
                if sink is not None:
                    self._changed.add(result.name)
                    self._dropped.discard(result.name)
        if sink is not None:
            sink(run)

    def take_changes(self, *, everything: bool = False, samples: int = SAMPLES_PER_NAME) -> Changes:
        """The names changed since the last call (every name when ``everything``: after Redis lost
        what was written), each with its latest ``samples`` measured times; the record starts over."""
        with self._lock:
            wanted = list(self.names) if everything else [n for n in self._changed if n in self.names]
            names = []
            for name in wanted:
                stats = self.names[name]
                latest = tuple(stats.durations)[-samples:]
                names.append(NameSample(name, dict(stats.counts), latest, stats.declared_cost,
                                        stats.priority))
            dropped = tuple(self._dropped)
            self._changed.clear()
            self._dropped.clear()
            return Changes(tuple(names), dropped, self.total_runs, self.evicted_names)

    def _view(self, batch: RequestBatch, report: RunReport) -> RunView:
        now = batch.clock()
        run_start = batch.run_started_at if batch.run_started_at is not None else now
        origin = batch.scheduled_at if batch.scheduled_at is not None else run_start
        cursor = run_start - origin
        tasks = []
        for result in report.results:
            error = result.error
            tasks.append(TaskView(
                result.name, result.priority, result.max_cost_seconds, result.outcome.value,
                cursor, result.duration_seconds, type(error).__name__ if error is not None else None,
            ))
            if result.duration_seconds is not None:
                cursor += result.duration_seconds
        request = batch.notes.get(REQUEST_NOTE)
        status = batch.notes.get(STATUS_NOTE)
        return RunView(
            number=self.total_runs + 1,
            pid=os.getpid(),
            request_id=batch.request_id,
            request=request if isinstance(request, str) else "",
            status=status if isinstance(status, int) else None,
            trigger=batch.trigger.name.lower(),
            finished_at=time.time(),
            wait_seconds=run_start - origin if batch.scheduled_at is not None else None,
            elapsed_seconds=report.elapsed_seconds,
            budget_seconds=report.budget_seconds,
            refused=report.refused,
            tasks=tuple(tasks),
            host=self.host,
        )

    def snapshot(self) -> dict[str, Any]:
        """The runs (newest first) and the per-name statistics, as JSON-ready data."""
        with self._lock:
            runs = list(self.runs)
            names = [(name, dict(s.counts), sorted(s.durations), s.declared_cost, s.priority)
                     for name, s in self.names.items()]
            total_runs, evicted = self.total_runs, self.evicted_names
        tasks = [task_row(*row) for row in sorted(names)]
        return {
            "total_runs": total_runs,
            "evicted_task_names": evicted,
            "runs": [run_json(run) for run in reversed(runs)],
            "tasks": tasks,
        }


def task_row(name: str, counts: dict[str, int], durations: list[float], declared: float,
             priority: int) -> dict[str, Any]:
    """A row of the table by task name; ``durations`` sorted (one process's, or every worker's)."""
    p50, p99 = percentile(durations, 0.5), percentile(durations, 0.99)
    return {
        "name": name, "priority": priority, "counts": counts, "declared_cost_seconds": declared,
        "samples": len(durations), "p50_seconds": p50, "p99_seconds": p99,
        "flag": cost_flag(declared, p99, len(durations)),
    }


def run_json(run: RunView) -> dict[str, Any]:
    return {
        "number": run.number, "pid": run.pid, "host": run.host, "request_id": run.request_id,
        "request": run.request, "status": run.status, "trigger": run.trigger, "finished_at": run.finished_at,
        "wait_seconds": run.wait_seconds, "elapsed_seconds": run.elapsed_seconds,
        "budget_seconds": run.budget_seconds, "refused": run.refused, "tasks_cut": run.tasks_cut,
        "tasks": [
            {"name": t.name, "priority": t.priority, "max_cost_seconds": t.max_cost_seconds,
             "outcome": t.outcome, "start_seconds": t.start_seconds, "duration_seconds": t.duration_seconds,
             "error": t.error}
            for t in run.tasks
        ],
    }

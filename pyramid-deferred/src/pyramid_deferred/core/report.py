"""What happened to each task of one run: the record tests, logs and metrics read."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

DECLARED, OBSERVED, TRIAL = "declared", "observed", "trial"


class Outcome(StrEnum):
    EXECUTED = "executed"
    FAILED = "failed"
    SKIPPED = "skipped"
    DISCARDED = "discarded"
    FORGOTTEN = "forgotten"
    SPILLED = "spilled"
    """A durable task handed to the spill-over engine (Celery) instead of being lost."""


class TaskResult(NamedTuple):
    """One task's fate (a named tuple: one is made per task per run, so it must be cheap)."""

    name: str
    priority: int
    max_cost_seconds: float
    outcome: Outcome
    duration_seconds: float | None = None
    """Measured time for executed and failed tasks; None for tasks that never started."""
    error: BaseException | None = None
    """What a failed task raised (for observers: tracing records it); None for any other outcome."""
    admitted_by: str | None = None
    """For a task that started: ``declared`` (its declared cost fitted) or ``observed`` (the bound
    learned from its recent runs fitted the budget where the declared cost did not)."""


class RunReport(NamedTuple):
    """The fate of every task the runner held, in the order it was decided.

    A named tuple, like ``TaskResult``: one is made per request, on the hot path.
    """

    results: tuple[TaskResult, ...] = ()
    elapsed_seconds: float = 0.0
    budget_seconds: float | None = None
    """The effective budget of this run (budget and ceiling combined); None means unlimited."""
    refused: int = 0
    """Tasks ``defer()`` refused beyond the runner's ``max_tasks`` (counted, not recorded one by one)."""
    deferred: int | None = None
    """Tasks ``defer()`` accepted for this run (None: not counted, a report built by hand). The
    ledger: ``deferred == len(results)``, each accepted task decided exactly once."""

    def __str__(self) -> str:
        """The run's summary line. Log it as an argument (``log.info("done %s", report)``):
        it is then formatted only if a handler takes the record."""
        counts = dict.fromkeys(Outcome, 0)
        for result in self.results:
            counts[result.outcome] += 1
        budget = "unlimited" if self.budget_seconds is None else f"{self.budget_seconds:.3f}s"
        outcomes = ", ".join(f"{count} {outcome}" for outcome, count in counts.items() if count)
        if self.refused:
            outcomes = f"{outcomes}, {self.refused} refused" if outcomes else f"{self.refused} refused"
        return f"in {self.elapsed_seconds:.3f}s of {budget} budget: {outcomes or 'no tasks'}"

    def _names(self, outcome: Outcome) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.outcome is outcome)

    @property
    def executed(self) -> tuple[str, ...]:
        return self._names(Outcome.EXECUTED)

    @property
    def failed(self) -> tuple[str, ...]:
        return self._names(Outcome.FAILED)

    @property
    def skipped(self) -> tuple[str, ...]:
        return self._names(Outcome.SKIPPED)

    @property
    def discarded(self) -> tuple[str, ...]:
        return self._names(Outcome.DISCARDED)

    @property
    def forgotten(self) -> tuple[str, ...]:
        return self._names(Outcome.FORGOTTEN)

    @property
    def spilled(self) -> tuple[str, ...]:
        return self._names(Outcome.SPILLED)

    @property
    def balanced(self) -> bool:
        """deferred = executed + failed + skipped + discarded + forgotten + spilled (True when
        the report does not count what was deferred)."""
        return self.deferred is None or self.deferred == len(self.results)

    @property
    def durations(self) -> tuple[tuple[str, float], ...]:
        """(name, seconds) of each executed task, in execution order."""
        return tuple(
            (r.name, r.duration_seconds)
            for r in self.results
            if r.outcome is Outcome.EXECUTED and r.duration_seconds is not None
        )

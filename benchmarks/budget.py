"""Item 5: budget precision with a 1 s budget and tasks that declare their true cost.

Each trial defers a seeded random set of sleeping tasks (20-250 ms, random priorities; about
1.6 s of work for a 1 s budget) into a real :class:`DeferredTaskRunner` and runs it. Compared:

- the run's wall time against the budget (overshoot = elapsed - budget; ~0 is the promise);
- the tasks it ran against an *oracle* that applies the same rule (priority order; skip a task
  whose cost exceeds what remains) with the exact durations instead of the clock;
- for context, the most tasks any order could fit (shortest first), which ignores priorities.

A sleep always lasts a little longer than asked, so honest declared costs are a few tenths of a
millisecond short: the overrun warnings this produces are counted too.

Then issue 13's learned costs, on a fake clock (:mod:`benchmarks.learned`): the shop's checkout
batches with service-like durations, declared-cost vs learned admission vs an oracle.
"""

from __future__ import annotations

import functools
import random
import statistics
import time
from typing import TYPE_CHECKING, Any

from loguru import logger
from pyramid_deferred.core import DeferredTaskRunner

from benchmarks import learned, logsetup

if TYPE_CHECKING:
    from loguru import Message

BUDGET_SECONDS = 1.0
TASKS_PER_TRIAL = 12
PRIORITIES = (
    DeferredTaskRunner.PRIORITY_CRITICAL, DeferredTaskRunner.PRIORITY_NORMAL, DeferredTaskRunner.PRIORITY_LOW
)


def oracle(durations: list[float], priorities: list[int], budget: float) -> list[int]:
    """The runner's rule with exact durations: indexes of the tasks it would run."""
    order = sorted(range(len(durations)), key=lambda index: (-priorities[index], index))
    used, ran = 0.0, []
    for index in order:
        if durations[index] <= budget - used:
            used += durations[index]
            ran.append(index)
    return ran


def most_that_fit(durations: list[float], budget: float) -> int:
    used, count = 0.0, 0
    for duration in sorted(durations):
        if used + duration > budget:
            break
        used, count = used + duration, count + 1
    return count


def _index(name: str) -> int:
    return int(name.rsplit("_", 1)[1])


def trial(rng: random.Random, overruns: list[str], excesses: list[float]) -> dict[str, Any]:
    durations = [round(rng.uniform(0.02, 0.25), 3) for _ in range(TASKS_PER_TRIAL)]
    priorities = [rng.choice(PRIORITIES) for _ in range(TASKS_PER_TRIAL)]
    runner = DeferredTaskRunner(budget_seconds=BUDGET_SECONDS)
    for index, (duration, priority) in enumerate(zip(durations, priorities, strict=True)):
        runner.defer(
            functools.partial(time.sleep, duration), max_cost_seconds=duration, priority=priority,
            name=f"bench.task_{index}",
        )
    overruns_before = len(overruns)
    started = time.perf_counter()
    report = runner.run()
    elapsed = time.perf_counter() - started
    ran = {_index(name) for name in report.executed}
    excess = [seconds - durations[_index(name)] for name, seconds in report.durations]
    excesses.extend(excess)
    expected = set(oracle(durations, priorities, BUDGET_SECONDS))
    return {
        "elapsed_seconds": round(elapsed, 6),
        "overshoot_ms": round((elapsed - BUDGET_SECONDS) * 1000, 3),
        "work_seconds": round(sum(durations), 3),
        "ran": len(ran),
        "oracle_ran": len(expected),
        "same_tasks_as_oracle": ran == expected,
        "most_that_fit": most_that_fit(durations, BUDGET_SECONDS),
        "sleep_excess_ms": round(statistics.fmean(excess) * 1000, 3) if excess else None,
        "overrun_warnings": len(overruns) - overruns_before,
    }


def measure(*, trials: int, learned_requests: int, seed: int = 6) -> dict[str, Any]:
    logsetup.configure("WARNING")
    overruns: list[str] = []
    excesses: list[float] = []

    def count_overruns(message: Message) -> None:
        if "overran its declared cost" in message.record["message"]:
            overruns.append(message.record["message"])

    sink = logger.add(count_overruns, level="WARNING")
    try:
        rng = random.Random(seed)
        started = time.monotonic()
        rows = [trial(rng, overruns, excesses) for _ in range(trials)]
    finally:
        logger.remove(sink)
    overshoots = [row["overshoot_ms"] for row in rows]
    wall_seconds = round(time.monotonic() - started, 1)
    return {
        "budget_seconds": BUDGET_SECONDS,
        "tasks_per_trial": TASKS_PER_TRIAL,
        "trials": trials,
        "seed": seed,
        "overshoot_ms_median": round(statistics.median(overshoots), 3),
        "overshoot_ms_max": round(max(overshoots), 3),
        "trials_over_budget": sum(1 for value in overshoots if value > 0),
        "ran_total": sum(row["ran"] for row in rows),
        "oracle_ran_total": sum(row["oracle_ran"] for row in rows),
        "most_that_fit_total": sum(row["most_that_fit"] for row in rows),
        "trials_matching_oracle": sum(1 for row in rows if row["same_tasks_as_oracle"]),
        "overrun_warnings": len(overruns),
        "sleep_excess_ms_median": round(statistics.median(excesses) * 1000, 3) if excesses else None,
        "wall_seconds": wall_seconds,
        "trials_detail": rows,
        "learned": learned.measure(requests=learned_requests),
    }

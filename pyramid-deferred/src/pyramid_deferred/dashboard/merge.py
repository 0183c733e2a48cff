"""Every worker's statistics as one table: honest sums, not averages.

Counts by outcome are added up across workers. p50 and p99 are computed from the workers' recent
measured times pooled together, never averaged from each worker's percentiles: a worker whose
task takes 100 ms beside three where it takes 1 ms gives a p99 of 100 ms, not 25.75 ms. The
declared cost and priority are those of the worker that wrote last (a deployment may change them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pyramid_deferred.dashboard.recorder import OUTCOMES, task_row
from pyramid_deferred.dashboard.redis_store import WorkerData


@dataclass(slots=True)
class Pooled:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    durations: list[float] = field(default_factory=list)
    declared_cost: float = 0.0
    priority: int = 0
    written_at: float = float("-inf")


def merge_tasks(workers: Iterable[WorkerData]) -> list[dict[str, Any]]:
    """The table by task name over ``workers``, sorted by name."""
    pooled: dict[str, Pooled] = {}
    for worker in workers:
        for name, record in worker.names.items():
            into = pooled.setdefault(name, Pooled())
            for outcome, count in record.counts.items():
                into.counts[outcome] += count
            into.durations.extend(record.durations)
            if worker.last_seen >= into.written_at:
                into.declared_cost, into.priority = record.declared_cost, record.priority
                into.written_at = worker.last_seen
    return [task_row(name, p.counts, sorted(p.durations), p.declared_cost, p.priority)
            for name, p in sorted(pooled.items())]

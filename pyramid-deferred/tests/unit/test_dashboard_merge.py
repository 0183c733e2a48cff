"""The table by task name over every worker: counts added up, percentiles from the pooled times."""

from __future__ import annotations

from pyramid_deferred.dashboard.merge import merge_tasks
from pyramid_deferred.dashboard.recorder import OUTCOMES, percentile
from pyramid_deferred.dashboard.redis_store import WorkerData
from pyramid_deferred.dashboard.wire import NameRecord, WorkerId, WorkerMeta

META = WorkerMeta(started_at=1.8e9, total_runs=0, published=0, dropped=0, evicted_task_names=0)


def worker(pid: int, last_seen: float, **names: NameRecord) -> WorkerData:
    return WorkerData(WorkerId("web-1", pid, "0a1b2c3d"), last_seen, META, dict(names))


def record(durations: list[float], *, declared: float = 0.5, priority: int = 50, **counts: int) -> NameRecord:
    return NameRecord({outcome: counts.get(outcome, 0) for outcome in OUTCOMES}, tuple(durations),
                      declared, priority)


def test_counts_are_added_up_across_workers():
    [row] = merge_tasks([
        worker(1, 10.0, purchase=record([0.1], executed=3, failed=1)),
        worker(2, 11.0, purchase=record([0.1], executed=5, skipped=2)),
    ])
    assert row["name"] == "purchase"
    assert row["counts"] == {**dict.fromkeys(OUTCOMES, 0), "executed": 8, "failed": 1, "skipped": 2}


def test_percentiles_come_from_the_pooled_times_not_from_averaging_each_worker_s():
    fast = [0.001] * 30
    slow = [0.1] * 10
    workers = [worker(1, 10.0, purchase=record(fast)), worker(2, 10.0, purchase=record(fast)),
               worker(3, 10.0, purchase=record(fast)), worker(4, 10.0, purchase=record(slow))]

    [row] = merge_tasks(workers)

    assert row["samples"] == 100
    assert row["p50_seconds"] == 0.001
    assert row["p99_seconds"] == 0.1, "the slow worker's tail is the deployment's tail"
    averaged = sum(percentile(sorted(d), 0.99) or 0 for d in (fast, fast, fast, slow)) / 4
    assert averaged != row["p99_seconds"]  # 0.02575: what averaging would have claimed
    assert row["flag"] is None


def test_the_declared_cost_is_the_one_written_last_and_names_are_sorted():
    rows = merge_tasks([
        worker(1, 20.0, purchase=record([0.2], declared=0.25, priority=100), audit=record([])),
        worker(2, 10.0, purchase=record([0.2], declared=0.5, priority=50)),
    ])

    assert [row["name"] for row in rows] == ["audit", "purchase"]
    purchase = rows[1]
    assert purchase["declared_cost_seconds"] == 0.25 and purchase["priority"] == 100
    assert rows[0]["p50_seconds"] is None and rows[0]["samples"] == 0
    assert purchase["flag"] is None


def test_no_workers_no_rows():
    assert merge_tasks([]) == []

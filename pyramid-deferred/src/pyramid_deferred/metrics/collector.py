"""Prometheus metrics of deferred tasks, kept on a registry the application owns.

Framework-free: the hook feeds :meth:`DeferredTaskMetrics.observe` one ``RunReport`` per request
(``pyramid_deferred.metrics``), and :func:`exposition` renders what a scrape gets. The registry is the
container's, not prometheus-client's global one, so two apps (or two tests) never share counters.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from pyramid_deferred.core import RunReport

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
TASK_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RUN_SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BUDGET_RATIO_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.5)
TASKS_PER_REQUEST_BUCKETS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0)


class DeferredTaskMetrics:
    """The deferred-task metrics of one application.

    Task names become label values: keep them static (``meta.purchase``), never per-request
    data such as an order id, or every request would create new time series.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.tasks = Counter(
            "deferred_tasks", "Deferred tasks by name and outcome "
            "(executed, failed, skipped, discarded, forgotten, spilled)",
            ["name", "outcome"], registry=registry,
        )
        self.task_seconds = Histogram(
            "deferred_task_duration_seconds", "Measured time of each task that ran (executed or failed)",
            ["name"], buckets=TASK_SECONDS_BUCKETS, registry=registry,
        )
        self.run_seconds = Histogram(
            "deferred_task_run_seconds", "Budget used: the time one request's run took",
            buckets=RUN_SECONDS_BUCKETS, registry=registry,
        )
        self.budget_used = Histogram(
            "deferred_task_budget_used_ratio", "Share of its effective budget one run used "
            "(runs with a limited budget only)",
            buckets=BUDGET_RATIO_BUCKETS, registry=registry,
        )
        self.tasks_per_request = Histogram(
            "deferred_tasks_per_request",
            "Tasks deferred by each request that deferred any, whatever became of them",
            buckets=TASKS_PER_REQUEST_BUCKETS, registry=registry,
        )
        self.deferred = Counter(
            "deferred_tasks_deferred", "Tasks defer() accepted, counted per run: the ledger's left side "
            "(= the sum of deferred_tasks_total over every outcome)",
            registry=registry,
        )
        self.spills = Counter(
            "deferred_task_spills", "Durable tasks handed to the spill-over engine, by reason "
            "(skipped, failed, service_down, shutdown) and result (taken, or lost: the broker refused)",
            ["name", "reason", "result"], registry=registry,
        )
        self._handoff_queue: Gauge | None = None
        self._running_past_cost: Gauge | None = None
        self._lock = threading.Lock()

    def observe(self, report: RunReport) -> None:
        """Record one request's run (requests that deferred nothing are never observed: they cost
        the hook nothing)."""
        self.tasks_per_request.observe(len(report.results))
        self.deferred.inc(len(report.results) if report.deferred is None else report.deferred)
        if not report.results:
            return
        for result in report.results:
            self.tasks.labels(name=result.name, outcome=result.outcome.value).inc()
            if result.duration_seconds is not None:
                self.task_seconds.labels(name=result.name).observe(result.duration_seconds)
        self.run_seconds.observe(report.elapsed_seconds)
        if report.budget_seconds:  # None = unlimited; 0 = an exhausted ceiling: no meaningful share
            self.budget_used.observe(report.elapsed_seconds / report.budget_seconds)

    def set_running_past_cost(self, count: int) -> None:
        """Tasks running past their declared cost, as the watchdog last counted them."""
        with self._lock:
            if self._running_past_cost is None:
                self._running_past_cost = Gauge(
                    "deferred_tasks_running_past_cost",
                    "Deferred tasks still running past their declared cost (the watchdog's last check)",
                    registry=self.registry, multiprocess_mode="livesum",
                )
        self._running_past_cost.set(count)
    def observe_spill(self, name: str, reason: str, taken: bool) -> None:
        self.spills.labels(name=name, reason=reason, result="taken" if taken else "lost").inc()

    def set_handoff_queue_length(self, length: int) -> None:
        """Batches waiting for the hand-off worker thread, for the server-support hook to report.

        The gauge is created on first use, so a deployment without a hand-off queue does not
        export a misleading 0. ``livesum`` adds up the live workers in multi-process mode.
        """
        with self._lock:
            if self._handoff_queue is None:
                self._handoff_queue = Gauge(
                    "deferred_task_handoff_queue_length",
                    "Request batches waiting for the hand-off worker thread",
                    registry=self.registry, multiprocess_mode="livesum",
                )
        self._handoff_queue.set(length)


def exposition(
    registry: CollectorRegistry, accept: str | None, multiprocess_dir: str | None = None
) -> tuple[bytes, str]:
    """The scrape body and its content type (Prometheus text, or OpenMetrics if the scraper asks).

    With a multi-process directory (gunicorn with several workers), every worker writes its
    values to files there and the scrape aggregates them all, whichever worker answers it.
    """
    if multiprocess_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type

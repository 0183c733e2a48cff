"""DeferredTaskMetrics: what one RunReport adds, on a registry of its own; what a scrape renders."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.parser import text_string_to_metric_families

from pyramid_deferred.core import Outcome, RunReport, TaskResult
from pyramid_deferred.metrics.collector import DeferredTaskMetrics, exposition


@pytest.fixture
def metrics() -> DeferredTaskMetrics:
    return DeferredTaskMetrics(CollectorRegistry())


def value(metrics: DeferredTaskMetrics, sample: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(sample, labels)


def report(*results: TaskResult, elapsed: float = 0.0, budget: float | None = 10.0) -> RunReport:
    return RunReport(results=results, elapsed_seconds=elapsed, budget_seconds=budget)


def task(name: str, outcome: Outcome, duration: float | None = None) -> TaskResult:
    return TaskResult(name, 50, 1.0, outcome, duration)


def test_each_task_is_counted_by_name_and_outcome(metrics):
    metrics.observe(report(
        task("meta.purchase", Outcome.EXECUTED, 0.2),
        task("crm.sync", Outcome.FAILED, 0.05),
        task("advisable.view", Outcome.SKIPPED),
        task("matomo.flush", Outcome.DISCARDED),
        task("matomo.flush", Outcome.FORGOTTEN),
        elapsed=0.25,
    ))
    metrics.observe(report(task("meta.purchase", Outcome.EXECUTED, 0.3), elapsed=0.3))
    assert value(metrics, "deferred_tasks_total", name="meta.purchase", outcome="executed") == 2
    for name, outcome in [
        ("crm.sync", "failed"), ("advisable.view", "skipped"),
        ("matomo.flush", "discarded"), ("matomo.flush", "forgotten"),
    ]:
        assert value(metrics, "deferred_tasks_total", name=name, outcome=outcome) == 1


def test_durations_are_observed_for_tasks_that_ran_only(metrics):
    metrics.observe(report(
        task("meta.purchase", Outcome.EXECUTED, 0.2),
        task("crm.sync", Outcome.FAILED, 0.05),
        task("advisable.view", Outcome.SKIPPED),
    ))
    assert value(metrics, "deferred_task_duration_seconds_count", name="meta.purchase") == 1
    assert value(metrics, "deferred_task_duration_seconds_sum", name="meta.purchase") == pytest.approx(0.2)
    assert value(metrics, "deferred_task_duration_seconds_count", name="crm.sync") == 1
    assert value(metrics, "deferred_task_duration_seconds_count", name="advisable.view") is None


def test_budget_used_per_run_in_seconds_and_as_a_share_of_a_limited_budget(metrics):
    metrics.observe(report(task("a.a", Outcome.EXECUTED, 2.0), elapsed=2.0, budget=8.0))
    metrics.observe(report(task("a.b", Outcome.EXECUTED, 1.0), elapsed=1.0, budget=None))
    assert value(metrics, "deferred_task_run_seconds_count") == 2
    assert value(metrics, "deferred_task_run_seconds_sum") == 3.0
    assert value(metrics, "deferred_task_budget_used_ratio_count") == 1
    assert value(metrics, "deferred_task_budget_used_ratio_sum") == 0.25


def test_tasks_per_request_counts_every_outcome_and_requests_that_deferred_nothing(metrics):
    metrics.observe(report(task("a.a", Outcome.EXECUTED, 0.0), task("a.b", Outcome.DISCARDED)))
    metrics.observe(report())
    assert value(metrics, "deferred_tasks_per_request_count") == 2
    assert value(metrics, "deferred_tasks_per_request_sum") == 2
    assert value(metrics, "deferred_tasks_per_request_bucket", le="0.0") == 1
    assert value(metrics, "deferred_task_run_seconds_count") == 1  # the empty one is no run


def test_the_handoff_queue_gauge_appears_only_once_someone_reports_a_queue(metrics):
    assert value(metrics, "deferred_task_handoff_queue_length") is None
    metrics.set_handoff_queue_length(3)
    metrics.set_handoff_queue_length(1)
    assert value(metrics, "deferred_task_handoff_queue_length") == 1


def test_two_registries_never_share_counts():
    one, two = DeferredTaskMetrics(CollectorRegistry()), DeferredTaskMetrics(CollectorRegistry())
    one.observe(report(task("a.a", Outcome.EXECUTED, 0.1)))
    assert value(one, "deferred_tasks_total", name="a.a", outcome="executed") == 1
    assert value(two, "deferred_tasks_total", name="a.a", outcome="executed") is None


def test_exposition_is_prometheus_text_unless_openmetrics_is_asked_for(metrics):
    metrics.observe(report(task("meta.purchase", Outcome.EXECUTED, 0.1)))
    body, content_type = exposition(metrics.registry, None)
    assert content_type.startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    [sample] = [s for s in families["deferred_tasks"].samples if s.name == "deferred_tasks_total"]
    assert sample.labels == {"name": "meta.purchase", "outcome": "executed"} and sample.value == 1
    body, content_type = exposition(metrics.registry, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith(OPENMETRICS.split(";")[0]) and body.endswith(b"# EOF\n")


def test_in_multiprocess_mode_the_scrape_reads_the_directory_not_the_app_registry(metrics, tmp_path):
    metrics.observe(report(task("meta.purchase", Outcome.EXECUTED, 0.1)))
    body, _ = exposition(metrics.registry, None, multiprocess_dir=str(tmp_path))
    assert b"meta.purchase" not in body  # this process did not write to that (empty) directory
    assert b"meta.purchase" in exposition(metrics.registry, None)[0]


def test_tasks_running_past_their_cost_are_a_gauge_created_on_first_use(metrics):
    assert value(metrics, "deferred_tasks_running_past_cost") is None
    metrics.set_running_past_cost(2)
    assert value(metrics, "deferred_tasks_running_past_cost") == 2
    metrics.set_running_past_cost(0)
    assert value(metrics, "deferred_tasks_running_past_cost") == 0

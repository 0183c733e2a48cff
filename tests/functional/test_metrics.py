"""Prometheus metrics, asserted by scraping the endpoint after real requests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.functional.shop import place_order

ROOT = Path(__file__).resolve().parents[2]
METRICS_ON = {"metrics.enabled": "true"}


def scrape(webapp, path: str = "/metrics") -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = webapp.get(path)
    assert response.content_type == "text/plain"
    return parse(response.text)


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def tasks(samples, name: str, outcome: str):
    return samples.get(("deferred_tasks_total", frozenset({("name", name), ("outcome", outcome)})))


def test_tasks_are_counted_by_name_and_outcome_after_real_requests(make_app):
    webapp = make_app(**METRICS_ON)
    place_order(webapp)
    place_order(webapp, declined=True)
    webapp.get("/probe/failing-task")
    samples = scrape(webapp)
    assert tasks(samples, "meta.purchase", "executed") == 1
    assert tasks(samples, "meta.purchase", "discarded") == 1
    assert tasks(samples, "matomo.flush", "executed") == 2  # always=True when declined
    assert tasks(samples, "matomo.flush", "forgotten") == 2  # replaced (unique)
    assert tasks(samples, "advisable_ai.remove_from_cart", "forgotten") == 1
    assert tasks(samples, "meta.add_to_cart", "executed") == 2
    assert tasks(samples, "probe.explode", "failed") == 1
    assert tasks(samples, "probe.after", "executed") == 1


def test_skipped_tasks_are_counted(make_app):
    webapp = make_app(**METRICS_ON, **{"deferred_task.budget_seconds": "0.5"})
    webapp.get("/probe/defer", params={"name": "crm.too_slow"})  # the probe declares 1 s
    assert tasks(scrape(webapp), "crm.too_slow", "skipped") == 1


def test_durations_runs_and_tasks_per_request_are_histograms(make_app):
    webapp = make_app(**METRICS_ON)
    place_order(webapp)
    place_order(webapp)
    webapp.get("/health")
    samples = scrape(webapp)
    no_labels = frozenset()
    assert samples[("deferred_task_duration_seconds_count", frozenset({("name", "meta.purchase")}))] == 2
    assert samples[("deferred_task_run_seconds_count", no_labels)] == 4  # /health ran nothing
    assert samples[("deferred_task_budget_used_ratio_count", no_labels)] == 4
    # Requests that deferred something: /health costs the hook nothing, not even an observation.
    assert samples[("deferred_tasks_per_request_count", no_labels)] == 4
    # 2 per add to cart, 6 per checkout (2 flushes, 3 purchases, 1 forgotten removal)
    assert samples[("deferred_tasks_per_request_sum", no_labels)] == 16
    assert samples[("deferred_tasks_per_request_bucket", frozenset({("le", "1.0")}))] == 0


def test_the_scrape_of_one_app_never_shows_another_apps_tasks(make_app):
    busy, idle = make_app(**METRICS_ON), make_app(**METRICS_ON)
    place_order(busy)
    assert tasks(scrape(busy), "meta.purchase", "executed") == 1
    assert tasks(scrape(idle), "meta.purchase", "executed") is None


def test_the_path_is_configurable(make_app):
    webapp = make_app(**METRICS_ON, **{"metrics.path": "/_internal/metrics"})
    place_order(webapp)
    assert tasks(scrape(webapp, "/_internal/metrics"), "meta.purchase", "executed") == 1
    webapp.get("/metrics", status=404)


def test_metrics_are_off_unless_enabled(make_app):
    webapp = make_app()
    place_order(webapp)
    webapp.get("/metrics", status=404)


def test_openmetrics_is_served_when_the_scraper_asks_for_it(make_app):
    webapp = make_app(**METRICS_ON)
    response = webapp.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.content_type == "application/openmetrics-text"
    assert response.text.endswith("# EOF\n")


WORKER = textwrap.dedent("""
    import sys
    from dependency_injector import providers
    from webtest import TestApp
    from app.factory import build_container, make_configurator
    from tests.functional.shop import BROWSER, place_order

    def no_logging():
        yield

    settings = {"metrics.enabled": "true", "deferred_task.log_path": sys.argv[2]}
    container = build_container(settings)
    container.logging.override(providers.Resource(no_logging))
    app = TestApp(make_configurator(settings, container).make_wsgi_app(), extra_environ=BROWSER)
    if sys.argv[1] == "scrape":
        sys.stdout.write(app.get("/metrics").text)
    else:
        for _ in range(int(sys.argv[1])):
            place_order(app)
""")


def run_worker(argument: str, multiproc_dir: Path, tmp_path: Path) -> str:
    environ = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", WORKER, argument, str(tmp_path / "deferred_task.log")],
        env=environ, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_multiprocess_mode_adds_up_every_workers_tasks(tmp_path):
    """gunicorn with several workers: each writes to PROMETHEUS_MULTIPROC_DIR; any scrape sums them."""
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    run_worker("2", multiproc_dir, tmp_path)  # two worker processes, one after the other
    run_worker("3", multiproc_dir, tmp_path)
    samples = parse(run_worker("scrape", multiproc_dir, tmp_path))  # a third one answers the scrape
    assert tasks(samples, "meta.purchase", "executed") == 5
    assert samples[("deferred_tasks_per_request_count", frozenset())] == 10  # cart, then checkout


def test_the_handoff_queue_length_is_a_gauge_once_batches_are_handed_off(make_app):
    webapp = make_app(**METRICS_ON, **{"deferred_task.strategy": "thread"})
    assert not any(name == "deferred_task_handoff_queue_length" for name, _ in scrape(webapp))
    webapp.get("/probe/defer", params={"name": "probe.handed_off"})
    samples = scrape(webapp)
    assert ("deferred_task_handoff_queue_length", frozenset()) in samples

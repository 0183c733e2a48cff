"""Prometheus metrics, opt-in: ``config.include("pyramid_deferred.metrics")`` after
``config.include("pyramid_deferred")`` (and ``pip install pyramid-deferred[prometheus]``).

Every request's run feeds the app's own registry (not prometheus-client's global one, so two
apps in a process never add to each other's counters); ``GET <metrics.path>`` serves it. When
``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn with several workers), the endpoint aggregates
every worker's values from that directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from pyramid.config import Configurator
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response

from pyramid_deferred.batch import RequestBatch
from pyramid_deferred.core import RunReport
from pyramid_deferred.hook import get_hook
from pyramid_deferred.metrics.collector import MULTIPROC_DIR_ENV, DeferredTaskMetrics, exposition
from pyramid_deferred.settings import load, setting
from pyramid_deferred.values import ConfigError, parse_url_path

METRICS_ROUTE = "deferred_task_metrics"
METRICS_ATTR = "deferred_task_metrics"


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    path: str = setting(
        key="metrics.path", env="APP_METRICS_PATH", parse=parse_url_path, default="/metrics",
        doc="Where Prometheus scrapes (with `pyramid_deferred.metrics` included). It shows task "
        "names: expose it only where it is protected.",
    )


class MetricsObserver:
    """The report observer (``config.add_deferred_task_observer``) that feeds the metrics."""

    def __init__(self, metrics: DeferredTaskMetrics) -> None:
        self.metrics = metrics

    def __call__(self, batch: RequestBatch, report: RunReport) -> None:
        self.metrics.observe(report)

    def __repr__(self) -> str:
        return "MetricsObserver()"


class MetricsView:
    """``GET <path>``: what Prometheus scrapes."""

    def __init__(self, metrics: DeferredTaskMetrics, multiprocess_dir: str | None) -> None:
        self.metrics = metrics
        self.multiprocess_dir = multiprocess_dir

    def __call__(self, request: Request) -> Response:
        accept = request.headers.get("Accept")
        body, content_type = exposition(self.metrics.registry, accept, self.multiprocess_dir)
        response = Response(body=body)
        response.headers["Content-Type"] = content_type
        response.cache_control = "no-store"
        return response


def get_metrics(registry: Registry) -> DeferredTaskMetrics:
    """The app's metrics (for a test, or to add the app's own collectors to its registry)."""
    metrics: DeferredTaskMetrics | None = getattr(registry, METRICS_ATTR, None)
    if metrics is None:
        raise LookupError('metrics are not set up: config.include("pyramid_deferred.metrics")')
    return metrics


def check_multiprocess_dir(raw: str) -> None:
    """prometheus-client writes every worker's values there: otherwise the first metric created
    fails with a FileNotFoundError naming a .db file, or (empty value) writes into the cwd."""
    if not raw.strip() or not os.path.isdir(raw) or not os.access(raw, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{MULTIPROC_DIR_ENV}={raw!r} is not a writable directory; allowed: an existing directory "
            "(emptied at each deploy), or leave it unset for a single process"
        )


def includeme(config: Configurator) -> None:
    settings = load(MetricsSettings, config.registry.settings)
    multiprocess_dir = os.environ.get(MULTIPROC_DIR_ENV)
    if multiprocess_dir is not None:
        check_multiprocess_dir(multiprocess_dir)
    metrics = DeferredTaskMetrics(CollectorRegistry(auto_describe=True))
    setattr(config.registry, METRICS_ATTR, metrics)
    config.add_deferred_task_observer(MetricsObserver(metrics))
    config.add_route(METRICS_ROUTE, settings.path)
    config.add_view(MetricsView(metrics, multiprocess_dir or None), route_name=METRICS_ROUTE,
                    request_method="GET")

    def watch_handoff_queue() -> None:
        hook = get_hook(config.registry)
        hook.worker.add_queue_listener(metrics.set_handoff_queue_length)
        hook.watchdog.listeners.append(metrics.set_running_past_cost)
        if hook.spill_over is not None:
            hook.spill_over.listeners.append(
                lambda task, taken: metrics.observe_spill(task.name, task.reason, taken)
            )

    config.action(None, watch_handoff_queue)

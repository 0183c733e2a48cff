"""Prometheus metrics for the hook: every run feeds them; a view exposes them.

Included by ``hooks``; does nothing unless the ``metrics`` settings enable it
(``APP_METRICS_ENABLED`` / ``metrics.enabled``). The endpoint lives at ``APP_METRICS_PATH``
(default ``/metrics``). When ``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn with several
workers), the endpoint aggregates every worker's values from that directory.
"""

from __future__ import annotations

import os
from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from app.deferred_task import RunReport
from app.metrics import MULTIPROC_DIR_ENV, DeferredTaskMetrics, exposition
from hooks.batch import RequestBatch

METRICS_ROUTE = "deferred_task_metrics"


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


def includeme(config: Configurator) -> None:
    container: Any = getattr(config.registry, "container", None)
    if container is None or not container.config.metrics.enabled():
        return
    metrics: DeferredTaskMetrics = container.metrics()
    config.add_deferred_task_observer(MetricsObserver(metrics))
    container.handoff_worker().add_queue_listener(metrics.set_handoff_queue_length)
    config.add_route(METRICS_ROUTE, container.config.metrics.path())
    config.add_view(
        MetricsView(metrics, os.environ.get(MULTIPROC_DIR_ENV) or None),
        route_name=METRICS_ROUTE, request_method="GET",
    )

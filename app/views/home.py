"""A page that shows the defer pattern without any external service."""

from __future__ import annotations

import time

from loguru import logger
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config
from pyramid_deferred import DeferredTaskRunner

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Deferred task runner</title></head>
<body><h1>Deferred task runner</h1>
<p>This page deferred a task named <code>demo.page_view</code>; it runs after you received this page.
See <code>logs/deferred_task.log</code> (at DEFERRED_TASK_LOG_THRESHOLD=DEBUG) and the console.</p>
<p>The example shop defers its integration calls (Meta Conversions API, Advisable AI, Manago,
Matomo; dry-run without credentials: the payloads are logged at INFO):
<a href="/products">products</a>, <a href="/vendors">vendors</a>, <a href="/search?q=coffee">a search</a>,
<a href="/order">the cart and checkout</a> (card 4000000000000002 is declined: always, unique, forget
and the failed-request rule), <a href="/register">registration</a>.
<a href="/metrics">/metrics</a> when APP_METRICS_ENABLED is on (development.ini).</p>
</body></html>
"""


def record_page_view(path: str, requested_at: float) -> None:
    logger.bind(channel="app").info(
        "demo.page_view for {} ran {:.1f} ms after the view returned",
        path, (time.monotonic() - requested_at) * 1000,
    )


@view_config(route_name="home")
def home(request: Request) -> Response:
    runner: DeferredTaskRunner = request.deferred_task
    path, now = request.path, time.monotonic()
    runner.defer(
        lambda: record_page_view(path, now),
        max_cost_seconds=0.1,
        priority=DeferredTaskRunner.PRIORITY_LOW,
        name="demo.page_view",
    )
    return Response(PAGE, content_type="text/html")


@view_config(route_name="health", renderer="json")
def health(request: Request) -> dict[str, str]:
    return {"status": "ok"}

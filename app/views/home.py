"""A page that shows the defer pattern without any external service."""

from __future__ import annotations

import time

from loguru import logger
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config
from pyramid_deferred import DeferredTaskRunner
from pyramid_deferred.dashboard import dashboard_url

from app.views import layout

BODY = """<p>This page deferred a task named <code>demo.page_view</code>: it ran after you received
this page.</p>
{live}
<p>The example shop defers its integration calls (Meta Conversions API, Advisable AI, Manago,
Matomo; dry-run without credentials: each call is logged at INFO by name and size):
<a href="/products">products</a>, <a href="/vendors">vendors</a>, <a href="/search?q=coffee">a search</a>,
<a href="/order">the cart and checkout</a> (card 4000000000000002 is declined: always, unique, forget
and the failed-request rule), <a href="/register">registration</a>.</p>
<p>The DEFERRED_TASK log channel: <code>logs/deferred_task.log</code> (at DEFERRED_TASK_LOG_THRESHOLD=DEBUG)
and the console; <a href="/metrics">/metrics</a> when APP_METRICS_ENABLED is on (development.ini).</p>
"""
LIVE_TIP = (
    '<p class="tip">Open <a href="{url}" target="deferred-tasks">the live page of deferred tasks</a> next to '
    "this one, then click <em>Add to cart</em> on a product: its tasks show up there, on a timeline that "
    "starts when the response left.</p>"
)


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
    url = dashboard_url(request.registry)
    live = LIVE_TIP.format(url=layout.escape(url)) if url is not None else ""
    return Response(layout.page("Deferred task runner", BODY.format(live=live)), content_type="text/html")


@view_config(route_name="health", renderer="json")
def health(request: Request) -> dict[str, str]:
    return {"status": "ok"}

"""The shop as ``make serve`` runs it (dashboard on, open), plus a route whose task name and path
are markup, for the browser test: ``python -m waitress --call tests.functional.dashboard_app:make_app``."""

from __future__ import annotations

import os

from pyramid.request import Request
from pyramid.response import Response
from pyramid.router import Router

from app.factory import build_container, make_configurator

EVIL_TASK = "<img src=x onerror=alert(1)>"
LOG_PATH_ENV = "DASHBOARD_TEST_LOG_PATH"


def evil(request: Request) -> Response:
    request.deferred_task.defer(lambda: None, max_cost_seconds=0.5, name=EVIL_TASK)
    return Response("ok")


def make_app() -> Router:
    settings = {
        "dashboard.enabled": "true",
        "dashboard.require_token": "false",
        "deferred_task.log_path": os.environ[LOG_PATH_ENV],
        "deferred_task.log_threshold": "INFO",
        "app.log_level": "WARNING",
    }
    config = make_configurator(settings, build_container(settings))
    config.add_route("evil", "/evil/*rest")
    config.add_view(evil, route_name="evil")
    return config.make_wsgi_app()

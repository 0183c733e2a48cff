"""The real application (``make_configurator``: container, hook, views) plus three bench routes.

- ``/bench/none``: the same small body, nothing deferred (the baseline);
- ``/bench/naive``: the work run from ``request.add_finished_callback`` (before the body is sent);
- ``/bench/runner``: the work deferred with ``request.deferred_task.defer()``.

Servers call :func:`create_app`; the in-process overhead benchmark builds the app with and
without the hook through :func:`make_app`.
"""

from __future__ import annotations

import configparser
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid.router import Router

from app.deferred_task import DeferredTaskRunner
from app.factory import build_container, make_configurator
from benchmarks.apps.work import BODY, CONTENT_TYPE, Work
from hooks.lifecycle import install_shutdown

COST_MARGIN = 1.25
"""Each task declares a worst case 25 % above its sleep, as an honest view would."""


PRODUCTION_INI = Path(__file__).resolve().parents[2] / "config" / "production.ini"


def production_settings(log_dir: str) -> dict[str, Any]:
    """``config/production.ini``'s app settings, read from the file, with the log file in ``log_dir``."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(PRODUCTION_INI, encoding="utf-8")
    settings: dict[str, Any] = {key: value for key, value in parser["app:main"].items() if key != "use"}
    settings["deferred_task.log_path"] = os.path.join(log_dir, "deferred_task.log")
    return settings


def _body() -> Response:
    return Response(body=BODY, content_type=CONTENT_TYPE, charset=None)


def none_view(request: Request) -> Response:
    return _body()


def naive_view(request: Request) -> Response:
    work = Work.from_params(request.params)
    request.add_finished_callback(lambda _request: work.run_all())
    return _body()


def runner_view(request: Request) -> Response:
    work = Work.from_params(request.params)
    runner: DeferredTaskRunner = request.deferred_task
    for index, task in enumerate(work.tasks()):
        runner.defer(task, max_cost_seconds=work.seconds * COST_MARGIN, name=f"bench.sleep_{index}")
    return _body()


def add_bench_views(config: Configurator, *, hook: bool = True) -> None:
    routes = [("bench_none", "/bench/none", none_view), ("bench_naive", "/bench/naive", naive_view)]
    if hook:
        routes.append(("bench_runner", "/bench/runner", runner_view))
    for name, pattern, view in routes:
        config.add_route(name, pattern)
        config.add_view(view, route_name=name)


def make_app(
    settings: dict[str, Any], *, hook: bool = True, extra: Callable[[Configurator], None] | None = None
) -> Router:
    """The application as ``app.factory.create_app`` builds it; ``hook=False`` leaves out ``hooks`` only.

    ``extra`` adds pieces to the app (the overhead benchmark adds the hook's parts one by one).
    """
    container = build_container(settings, environ={})  # the caller's APP_* variables stay out
    if hook:
        config = make_configurator(settings, container)
    else:
        container.init_resources()
        config = Configurator(settings=dict(settings))
        config.registry.container = container
        config.include("app.views")
    if extra is not None:
        extra(config)
    add_bench_views(config, hook=hook)
    app: Router = config.make_wsgi_app()
    if hook:
        install_shutdown(container, handle_sigterm=False)  # as create_app does: drain at exit
    return app


def create_app() -> Router:
    """The servers' factory (``gunicorn 'benchmarks.apps.pyramid_app:create_app()'``)."""
    return make_app(production_settings(os.environ.get("BENCH_LOG_DIR", tempfile.gettempdir())))

"""The real application (``make_configurator``: container, ``hooks``, views) plus three bench routes.

- ``/bench/none``: the same small body, nothing deferred (the baseline);
- ``/bench/naive``: the work run from ``request.add_finished_callback`` (before the body is sent);
- ``/bench/runner``: the work deferred with ``request.deferred_task.defer()``;
- ``/bench/concurrent``: the same, each task deferred with ``concurrent=True`` (side by side on
  the add-on's pool).

Servers call :func:`create_app`; the in-process overhead benchmark also builds a bare Pyramid
app (no container, no add-on, no app tweens) with :func:`make_bare_app`.

The add-on (``config.include("pyramid_deferred")``, through ``hooks``) reads its settings when
the configuration commits, from the app's settings *and the environment*: both builders keep the
caller's ``APP_DEFERRED_TASK_*`` variables out (:func:`addon_environ_hidden`), as
``build_container(environ={})`` keeps out the app's own, so a bench measures ``production.ini``.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid.router import Router
from pyramid_deferred import DeferredTaskRunner, DeferredTaskSettings
from pyramid_deferred.settings import declared

from app.factory import build_container, make_configurator
from benchmarks.apps.work import BODY, CONTENT_TYPE, Work

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


def _defer_work(request: Request, *, concurrent: bool) -> Response:
    work = Work.from_params(request.params)
    runner: DeferredTaskRunner = request.deferred_task
    for index, task in enumerate(work.tasks()):
        runner.defer(
            task, max_cost_seconds=work.seconds * COST_MARGIN, name=f"bench.sleep_{index}",
            concurrent=concurrent,
        )
    return _body()


def runner_view(request: Request) -> Response:
    return _defer_work(request, concurrent=False)


def concurrent_view(request: Request) -> Response:
    return _defer_work(request, concurrent=True)


def add_bench_views(config: Configurator) -> None:
    for name, pattern, view in (
        ("bench_none", "/bench/none", none_view),
        ("bench_naive", "/bench/naive", naive_view),
        ("bench_runner", "/bench/runner", runner_view),
        ("bench_concurrent", "/bench/concurrent", concurrent_view),
    ):
        config.add_route(name, pattern)
        config.add_view(view, route_name=name)


ADDON_ENVIRON = tuple(decl.env for _, decl in declared(DeferredTaskSettings))
"""The environment variables the add-on's settings read (they win over the .ini settings)."""


@contextlib.contextmanager
def addon_environ_hidden() -> Iterator[None]:
    """While an app's configuration commits, the add-on does not see the caller's variables."""
    hidden = {name: os.environ.pop(name) for name in ADDON_ENVIRON if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(hidden)


def make_app(settings: dict[str, Any]) -> Router:
    """The application as ``app.factory.create_app`` builds it, plus the bench routes.

    The add-on drains its hand-off worker at exit by itself (``config.include("pyramid_deferred")``).
    """
    container = build_container(settings, environ={})  # the caller's APP_* variables stay out
    config = make_configurator(settings, container)
    add_bench_views(config)
    with addon_environ_hidden():
        app: Router = config.make_wsgi_app()
    return app


def make_bare_app(
    settings: dict[str, Any] | None = None, *, extra: Callable[[Configurator], None] | None = None
) -> Router:
    """A bare Pyramid app: a ``Configurator`` with ``/bench/none`` and its view, nothing else.

    ``extra`` adds pieces to it (the overhead benchmark: the add-on, or its parts one by one).
    """
    config = Configurator(settings=dict(settings or {}))
    config.add_route("bench_none", "/bench/none")
    config.add_view(none_view, route_name="bench_none")
    if extra is not None:
        extra(config)
    with addon_environ_hidden():
        app: Router = config.make_wsgi_app()
    return app


def create_app() -> Router:
    """The servers' factory (``gunicorn 'benchmarks.apps.pyramid_app:create_app()'``)."""
    return make_app(production_settings(os.environ.get("BENCH_LOG_DIR", tempfile.gettempdir())))

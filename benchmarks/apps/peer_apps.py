"""The apps of the peers section (:mod:`benchmarks.peers`), called in process, never served.

Each app has one route, ``/bench/none``, whose view returns :data:`~benchmarks.apps.work.BODY`
after handing ``tasks`` no-op callables to its framework's post-response mechanism (``tasks`` = 0:
the framework's bare request):

- Pyramid, bare (a ``Configurator`` with the route and its view, no add-on);
- Pyramid with ``config.include("pyramid_deferred")`` and its default settings: ``defer()``;
- Pyramid without the add-on: ``request.add_finished_callback``;
- Flask: ``response.call_on_close``;
- Starlette: ``BackgroundTasks``, a sync (run in the threadpool) or an async no-op.

Django, whose settings are process-wide, is in :mod:`benchmarks.apps.django_app`.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask import Response as FlaskResponse
from pyramid.config import Configurator
from pyramid.request import Request as PyramidRequest
from pyramid.response import Response as PyramidResponse
from pyramid.router import Router
from starlette.applications import Starlette
from starlette.background import BackgroundTasks
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route

from benchmarks.apps.pyramid_app import addon_environ_hidden, none_view
from benchmarks.apps.work import BODY, CONTENT_TYPE

PATH = "/bench/none"
DECLARED_COST = 1.0
"""Each deferred no-op declares 1 s: the default 10 s budget counts time spent, so none is skipped."""


def noop(*args: object, **kwargs: object) -> None:
    """The task every mechanism runs (a finished callback is given the request, a Django receiver
    the signal and its sender: ignored)."""


async def async_noop() -> None:
    pass


class Tally:
    """A task that counts its calls: the section checks once that each case ran its tasks."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: object, **kwargs: object) -> None:
        self.calls += 1


class AsyncTally(Tally):
    async def __call__(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        self.calls += 1


Task = Callable[..., object]
PyramidView = Callable[[PyramidRequest], PyramidResponse]


def _pyramid(view: PyramidView, *, addon: bool) -> Router:
    config = Configurator()
    if addon:
        config.include("pyramid_deferred")
    config.add_route("bench_none", PATH)
    config.add_view(view, route_name="bench_none")
    with addon_environ_hidden():  # the add-on's defaults, whatever the caller's environment says
        app: Router = config.make_wsgi_app()
    return app


def pyramid_bare() -> Router:
    return _pyramid(none_view, addon=False)


def pyramid_deferred(tasks: int, task: Task = noop) -> Router:
    """The add-on with its default settings (request id, watchdog, reports, observers: all on).

    ``tasks`` = 0: the bare app's view, which never touches ``request.deferred_task``.
    """
    if not tasks:
        return _pyramid(none_view, addon=True)

    def view(request: PyramidRequest) -> PyramidResponse:
        runner = request.deferred_task
        for _ in range(tasks):
            runner.defer(task, max_cost_seconds=DECLARED_COST, name="bench.noop")
        return none_view(request)

    return _pyramid(view, addon=True)


def pyramid_finished_callbacks(tasks: int, task: Task = noop) -> Router:
    def view(request: PyramidRequest) -> PyramidResponse:
        for _ in range(tasks):
            request.add_finished_callback(task)
        return none_view(request)

    return _pyramid(view, addon=False)


def flask(tasks: int, task: Task = noop) -> Flask:
    app = Flask(__name__)

    def bare() -> FlaskResponse:
        return FlaskResponse(BODY, content_type=CONTENT_TYPE)

    def deferring() -> FlaskResponse:
        response = bare()
        for _ in range(tasks):
            response.call_on_close(task)
        return response

    app.add_url_rule(PATH, "bench_none", deferring if tasks else bare)
    return app


def starlette(tasks: int, task: Task = async_noop) -> Starlette:
    """``task`` a coroutine function (awaited in the request's task) or a plain one (threadpool)."""

    async def bare(request: StarletteRequest) -> StarletteResponse:
        return StarletteResponse(BODY, media_type=CONTENT_TYPE)

    async def deferring(request: StarletteRequest) -> StarletteResponse:
        background = BackgroundTasks()
        for _ in range(tasks):
            background.add_task(task)
        return StarletteResponse(BODY, media_type=CONTENT_TYPE, background=background)

    return Starlette(routes=[Route(PATH, deferring if tasks else bare)])

"""A WebTest app: the real application plus views that defer recording tasks.

Its requests come from a browser (a client address and a user agent), as Meta events need.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dependency_injector import providers
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid_deferred.core import DeferredTaskRunner
from pyramid_deferred.hook import get_hook
from pytest_httpserver import HTTPServer
from webtest import TestApp

from app.factory import build_container, make_configurator
from containers import Container
from tests.functional.services_stub import answer_like_the_services, go_live
from tests.functional.shop import BROWSER, ORIGIN


def no_logging_setup() -> Iterator[None]:
    """Leave loguru as the test configured it (the `logs` fixture's sink stays in place)."""
    yield


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """True as soon as ``condition()`` holds (a batch handed off to the worker thread ran)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


class Recorder:
    """What happened during a request, in order: view, tasks, Pyramid's finished callback."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.runners: list[Any] = []

    def task(self, label: str):
        return lambda: self.events.append(label)


def add_probe_views(config: Configurator, recorder: Recorder) -> None:
    def defer_view(request: Request) -> Response:
        runner = request.deferred_task
        recorder.runners.append(runner)
        request.add_finished_callback(lambda _: recorder.events.append("finished-callback"))
        for name in request.params.getall("name") or ["probe.task"]:
            runner.defer(recorder.task(name), max_cost_seconds=1, name=name)
        for name in request.params.getall("always"):
            runner.defer(recorder.task(name), max_cost_seconds=1, name=name, always=True)
        status = int(request.params.get("status", "200"))
        recorder.events.append("view-returned")
        return Response(f"deferred {runner.has_tasks()}", status=status)

    def container_view(request: Request) -> Response:
        from_container = request.registry.container.deferred_task()
        recorder.runners.extend([from_container, request.deferred_task])
        from_container.defer(recorder.task("via-container"), max_cost_seconds=1, name="probe.container")
        return Response("ok")

    def failing_task_view(request: Request) -> Response:
        def explode() -> None:
            raise RuntimeError("integration exploded")

        request.deferred_task.defer(
            explode, max_cost_seconds=1, priority=DeferredTaskRunner.PRIORITY_CRITICAL, name="probe.explode"
        )
        request.deferred_task.defer(recorder.task("after-failure"), max_cost_seconds=1, name="probe.after")
        return Response("the body the client must get")

    def raising_view(request: Request) -> Response:
        request.deferred_task.defer(recorder.task("purchase"), max_cost_seconds=1, name="probe.purchase")
        request.deferred_task.defer(
            recorder.task("audit"), max_cost_seconds=1, name="probe.audit", always=True
        )
        raise ValueError("view crashed")

    def fresh_view(request: Request) -> Response:
        return Response(f"tasks at start: {request.deferred_task.has_tasks()}")

    for route, view in [
        ("defer", defer_view),
        ("container", container_view),
        ("failing-task", failing_task_view),
        ("raise", raising_view),
        ("fresh", fresh_view),
    ]:
        config.add_route(route, f"/probe/{route}")
        config.add_view(view, route_name=route)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_app(tmp_path, recorder) -> Iterator[Any]:
    containers: list[Container] = []
    apps: list[TestApp] = []

    def make(**settings: Any) -> TestApp:
        settings = {
            "deferred_task.log_path": str(tmp_path / "deferred_task.log"), "app.public_origin": ORIGIN,
            **settings,
        }
        container = build_container(settings, environ={})
        container.logging.override(providers.Resource(no_logging_setup))
        containers.append(container)
        config = make_configurator(settings, container)
        add_probe_views(config, recorder)
        app = TestApp(config.make_wsgi_app(), extra_environ=BROWSER)
        apps.append(app)
        return app

    yield make
    for app in apps:
        get_hook(app.app.registry).worker.shutdown(grace_seconds=5)
    for container in containers:
        container.shutdown_resources()


@pytest.fixture
def webapp(make_app) -> TestApp:
    return make_app()


@pytest.fixture
def live(make_app, httpserver: HTTPServer) -> TestApp:
    """The shop with every integration live against local stubs answering as the services do:
    what it sends is in ``httpserver.log`` (see ``services_stub``), not in a log line."""
    webapp = make_app()
    go_live(webapp, httpserver.url_for("").rstrip("/"))
    answer_like_the_services(httpserver)
    return webapp

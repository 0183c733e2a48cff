"""Every kind of request a Pyramid app makes has a runner, or a clear error, never an
AttributeError from the add-on: the router's, a script's (``prepare()``, as ``bootstrap()`` and
pshell use it: tasks run at ``closer()``), a ``DummyRequest`` given Pyramid's request extensions
(tasks run with ``run_deferred`` or its finished callbacks), ``Request.blank()`` through
``router.invoke_request`` (tasks run when the body is closed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyramid import testing
from pyramid.config import Configurator
from pyramid.request import Request, apply_request_extensions
from pyramid.response import Response
from pyramid.scripting import prepare

from pyramid_deferred import DeferredTaskRunner, NoRunnerError
from pyramid_deferred.testing import deferred_tasks_of, run_deferred


def send_purchase_view(trail: list[str]):
    def view(request: Request) -> Response:
        request.deferred_task.defer(lambda: trail.append("purchase"), max_cost_seconds=1,
                                    name="meta.purchase")
        return Response("ok")

    return view


@pytest.fixture
def config() -> Iterator[Configurator]:
    """``testing.setUp()`` with the add-on included, as a view test of the starter does."""
    configured = testing.setUp()
    configured.include("pyramid_deferred")
    yield configured
    testing.tearDown()


def test_a_dummy_request_given_the_extensions_has_a_runner_whose_tasks_run_when_asked(config):
    trail: list[str] = []
    request = testing.DummyRequest()
    apply_request_extensions(request)  # what Pyramid documents for a DummyRequest
    assert isinstance(request.deferred_task, DeferredTaskRunner)

    send_purchase_view(trail)(request)

    assert [task.name for task in deferred_tasks_of(request)] == ["meta.purchase"] and trail == []
    report = run_deferred(request)
    assert report is not None and report.executed == ("meta.purchase",) and trail == ["purchase"]
    request._process_finished_callbacks()  # what Pyramid would do at the request's end
    assert trail == ["purchase"]  # once


def test_a_dummy_request_s_tasks_also_run_at_its_finished_callbacks(config):
    trail: list[str] = []
    request = testing.DummyRequest()
    apply_request_extensions(request)
    send_purchase_view(trail)(request)
    request._process_finished_callbacks()
    assert trail == ["purchase"]


def test_a_dummy_request_without_the_extensions_gets_a_clear_error_from_the_helpers(config):
    request = testing.DummyRequest()
    with pytest.raises(NoRunnerError, match=r"apply_request_extensions\(request\)"):
        deferred_tasks_of(request)
    with pytest.raises(NoRunnerError, match="apply_request_extensions"):
        run_deferred(request)


def test_a_script_s_request_runs_its_tasks_when_the_script_closes_it():
    config = Configurator()
    config.include("pyramid_deferred")
    app = config.make_wsgi_app()
    trail: list[str] = []
    env = prepare(registry=app.registry)  # bootstrap() and pshell do this
    env["request"].deferred_task.defer(lambda: trail.append("seeded"), max_cost_seconds=1, name="db.seeded")
    assert trail == []
    env["closer"]()
    assert trail == ["seeded"]


def test_a_blank_request_through_the_router_runs_its_tasks_when_its_body_is_closed():
    trail: list[str] = []
    config = Configurator()
    config.include("pyramid_deferred")
    config.add_route("buy", "/buy")
    config.add_view(send_purchase_view(trail), route_name="buy")
    app = config.make_wsgi_app()

    request = Request.blank("/buy")
    request.registry = app.registry  # as Pyramid's docs of invoke_request say
    response = app.invoke_request(request)
    assert response.status_code == 200 and trail == []
    assert b"".join(response.app_iter) == b"ok" and trail == []
    response.app_iter.close()  # what a server (or WebOb's get_response, or .body) does once it sent the body
    assert trail == ["purchase"]

    assert Request.blank("/buy").get_response(app).text == "ok"  # WebOb closes the body itself
    assert trail == ["purchase", "purchase"]

"""The deferred_tasks fixture as a user meets it: a pytest session of its own, with WebTest and
a plain Pyramid app. Opt-in: installing the library adds no fixture to a foreign session."""

from __future__ import annotations

import pytest

CONFTEST = '''
import pytest
from pyramid.config import Configurator
from pyramid.response import Response
from webtest import TestApp

{plugins}


def shop(request):
    runner = request.deferred_task
    runner.defer(lambda: request.registry.trail.append("purchase"), max_cost_seconds=1,
                 priority=100, name="meta.purchase")
    runner.defer(lambda: request.registry.trail.append("flush"), max_cost_seconds=1,
                 priority=10, name="matomo.flush")
    return Response("ok")


@pytest.fixture
def webapp():
    config = Configurator()
    config.include("pyramid_deferred")
    config.registry.trail = []
    config.add_route("shop", "/shop")
    config.add_view(shop, route_name="shop")
    return TestApp(config.make_wsgi_app())
'''

TESTS = '''
def test_app_fixture_listed_first_is_still_captured(webapp, deferred_tasks):
    webapp.get("/shop")
    assert deferred_tasks.names == ["meta.purchase", "matomo.flush"]
    assert webapp.app.registry.trail == ["purchase", "flush"]


def test_holding_runs_nothing_until_asked(deferred_tasks, webapp):
    deferred_tasks.execute = False
    webapp.get("/shop")
    assert webapp.app.registry.trail == []
    deferred_tasks.assert_deferred("meta.purchase", priority=100, always=False)
    deferred_tasks.run()
    assert webapp.app.registry.trail == ["purchase", "flush"]


def test_a_wrong_expectation_fails(webapp, deferred_tasks):
    webapp.get("/shop")
    assert deferred_tasks.names == ["matomo.flush"]
'''

PLUGIN = "pyramid_deferred.pytest_plugin"


@pytest.mark.parametrize(
    ("args", "plugins"),
    [
        (["-p", PLUGIN], ""),
        ([], f"pytest_plugins = [{PLUGIN!r}]"),
        (["-p", PLUGIN], f"pytest_plugins = [{PLUGIN!r}]"),
    ],
    ids=["-p", "pytest_plugins", "both"],
)
def test_the_fixture_works_with_webtest_and_registers_once_however_it_is_named(pytester, args, plugins):
    pytester.makeconftest(CONFTEST.format(plugins=plugins))
    pytester.makepyfile(test_shop=TESTS)
    result = pytester.runpytest(*args, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_shop.py::test_a_wrong_expectation_fails*"])
    assert "already registered" not in result.stdout.str() + result.stderr.str()


def test_without_opting_in_a_test_session_has_no_deferred_tasks_fixture(pytester):
    pytester.makeconftest(CONFTEST.format(plugins=""))
    pytester.makepyfile(test_shop=TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(["*fixture 'deferred_tasks' not found*"])

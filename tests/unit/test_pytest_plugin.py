"""The deferred_tasks fixture as a user meets it: a pytest session of its own, with WebTest."""

from __future__ import annotations

import pytest

CONFTEST = '''
import pytest
from dependency_injector import providers
from pyramid.response import Response
from webtest import TestApp

from app.factory import build_container, make_configurator

{plugins}


def no_logging_setup():
    yield


def shop(request):
    runner = request.deferred_task
    runner.defer(lambda: request.registry.trail.append("purchase"), max_cost_seconds=1,
                 priority=100, name="meta.purchase")
    runner.defer(lambda: request.registry.trail.append("flush"), max_cost_seconds=1,
                 priority=10, name="matomo.flush")
    return Response("ok")


@pytest.fixture
def webapp(tmp_path):
    settings = {{"deferred_task.log_path": str(tmp_path / "log")}}
    container = build_container(settings, environ={{}})
    container.logging.override(providers.Resource(no_logging_setup))
    config = make_configurator(settings, container)
    config.registry.trail = []
    config.add_route("shop", "/shop")
    config.add_view(shop, route_name="shop")
    yield TestApp(config.make_wsgi_app())
    container.shutdown_resources()
'''

TESTS = '''
def test_app_fixture_listed_first_is_still_captured(webapp, deferred_tasks):
    webapp.get("/shop")
    assert deferred_tasks.names == ["meta.purchase", "matomo.flush"]
    assert webapp.app.registry.trail == ["purchase", "flush"]


def test_skipping_runs_nothing_until_asked(deferred_tasks, webapp):
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


@pytest.mark.parametrize(
    ("args", "plugins"),
    [
        (["-p", "app.pytest_plugin"], ""),
        ([], 'pytest_plugins = ["app.pytest_plugin"]'),
        (["-p", "app.pytest_plugin"], 'pytest_plugins = ["app.pytest_plugin"]'),
    ],
    ids=["-p", "pytest_plugins", "both"],
)
def test_the_fixture_works_with_webtest_and_registers_once_however_it_is_named(pytester, args, plugins):
    """With the package installed, its pytest11 entry point makes a third way; all share one name."""
    pytester.makeconftest(CONFTEST.format(plugins=plugins))
    pytester.makepyfile(test_shop=TESTS)
    result = pytester.runpytest(*args, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_shop.py::test_a_wrong_expectation_fails*"])
    assert "already registered" not in result.stdout.str() + result.stderr.str()

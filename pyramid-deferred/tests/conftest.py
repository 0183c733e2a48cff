"""Fixtures of the add-on's own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pyramid.config import Configurator
from webtest import TestApp

from pyramid_deferred.hook import get_hook
from pyramid_deferred.testing import LogCapture

pytest_plugins = ["pyramid_deferred.pytest_plugin", "pytester"]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every record of the add-on's stdlib loggers during the test, DEBUG included."""
    with LogCapture() as capture:
        yield capture


@pytest.fixture
def serve() -> Iterator[Callable[[Configurator], TestApp]]:
    """A WebTest app of a configuration; the apps' hand-off workers are drained at the end."""
    apps: list[TestApp] = []

    def make(config: Configurator) -> TestApp:
        app = TestApp(config.make_wsgi_app())
        apps.append(app)
        return app

    yield make
    for app in apps:
        get_hook(app.app.registry).worker.shutdown(grace_seconds=5)

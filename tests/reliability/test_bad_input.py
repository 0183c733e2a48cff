"""Bad input: every environment variable, every ``defer()`` argument and every unreadable HTTP request
of ``tests/reliability/bad_input.py``, and the README's table, which must be that module's rendering."""

from __future__ import annotations

import os
import re
import runpy
from collections.abc import Iterator
from typing import Any

import pytest
from dependency_injector import providers
from pyramid.exceptions import ConfigurationError
from pyramid.router import Router
from pyramid_deferred.core import DeferredTaskRunner
from pyramid_deferred.dashboard import DASHBOARD_ATTR
from pyramid_deferred.hook import get_hook
from pyramid_deferred.metrics import METRICS_ATTR, METRICS_ROUTE
from pyramid_deferred.testing import DeferredTaskCapture, LogCapture
from webtest import TestApp

from app.factory import build_container, make_configurator
from config.worker_ini import worker_ini_path
from containers import Container
from tests.functional.shop import BROWSER
from tests.reliability.bad_input import (
    ACCEPTED,
    API,
    ARGUMENT_CASES,
    AS_UNSET,
    DOC,
    ENV_ROWS,
    MISSING,
    PAGE,
    PREFIXES,
    REFUSED,
    REQUEST_CASES,
    ROOT,
    VALUES,
    EnvRow,
    RequestCase,
    readme_section,
    render,
    without,
)

GUNICORN_CONF = ROOT / "gunicorn.conf.py"
SCRUBBED = ("APP_", "DEFERRED_TASK_", "WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR")

ENV_CASES = [
    pytest.param(row, variable, kind, id=f"{variable}-{kind}")
    for row in ENV_ROWS
    for variable in row.variables
    for kind in VALUES
]


def no_logging_setup() -> Iterator[None]:
    yield


def start_up(row: EnvRow, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """What start-up makes of ``environ``: the whole app's settings (the container's and the
    add-on's, read when the configuration commits), or gunicorn.conf.py's globals."""
    with monkeypatch.context() as patch:
        for name in [key for key in os.environ if key.startswith(SCRUBBED)]:
            patch.delenv(name)
        for name, value in environ.items():
            patch.setenv(name, value)
        if row.read_by == "app/worker.py":
            return worker_ini_path(environ)
        if row.read_by == "gunicorn.conf.py":
            return runpy.run_path(str(GUNICORN_CONF))["workers"]
        container = build_container({}, environ)
        container.logging.override(providers.Resource(no_logging_setup))
        router = make_configurator({}, container).make_wsgi_app()
        get_hook(router.registry).worker.shutdown(grace_seconds=0)
        return settings_of(container, router)


def settings_of(container: Container, router: Router) -> tuple[object, ...]:
    metrics = getattr(router.registry, METRICS_ATTR, None)
    metrics_path = router.routes_mapper.get_route(METRICS_ROUTE).path if metrics is not None else None
    dashboard = getattr(router.registry, DASHBOARD_ATTR, None)
    return (
        container.config(),
        get_hook(router.registry).settings,
        metrics is not None,
        metrics_path,
        # a token's effect, which no setting object outside the view holds: open (200) or not (401)
        TestApp(router).get(metrics_path, expect_errors=True).status_int if metrics_path else None,
        dashboard.settings if dashboard is not None else None,
        container.meta_settings(),
        container.advisable_ai_settings(),
        container.manago_settings(),
        container.matomo_settings(),
        container.breaker_store_settings(),
    )


@pytest.mark.parametrize(("row", "variable", "kind"), ENV_CASES)
def test_every_variable_with_every_kind_of_invalid_value(
    row: EnvRow, variable: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = VALUES[kind]
    environ = {**row.companions, variable: value}
    outcome = row.outcomes[kind]

    if outcome == REFUSED:
        # ValueError from the container; from the add-on, Pyramid's ConfigurationExecutionError
        # around its ConfigError, raised by make_wsgi_app() when the configuration commits.
        with pytest.raises((ValueError, ConfigurationError)) as raised:
            start_up(row, environ, monkeypatch)
        message = str(raised.value)
        assert variable in message, f"the error does not name {variable}: {message}"
        if row.secret and value:
            assert value not in message, f"the error echoes the secret: {message}"
    elif outcome == AS_UNSET:
        assert start_up(row, environ, monkeypatch) == start_up(row, without(environ, variable), monkeypatch)
    else:
        assert outcome == ACCEPTED
        start_up(row, environ, monkeypatch)


def test_the_table_covers_every_variable_the_application_reads() -> None:
    """A new variable must get a row: compared with the names the code reads."""
    tried = {variable for row in ENV_ROWS for variable in row.variables}
    sources = [ROOT / "gunicorn.conf.py", *ROOT.glob("config/*.py"),
               *ROOT.glob("app/**/*.py"), *ROOT.glob("pyramid-deferred/src/**/*.py")]
    read = set()
    for path in sources:
        text = path.read_text()
        read |= _quoted_env_names(text)
    read -= {"GUNICORN_BIND", "PROBE_DIR"}  # left to gunicorn; tests only
    assert read <= tried, f"variables without a row: {sorted(read - tried)}"


ENV_NAME = re.compile(
    r'"((?:APP|DEFERRED_TASK|META|ADVISABLE_AI|MANAGO|MATOMO|CIRCUIT_BREAKER|PROMETHEUS|WEB|GUNICORN)_[A-Z_]+)"'
)
PREFIXED_NAME = re.compile(r'f"\{prefix\}_([A-Z_]+)"')


def _quoted_env_names(text: str) -> set[str]:
    """Variable names quoted in the source, ``f"{prefix}_X"`` expanded for each service."""
    prefixed = {f"{prefix}_{suffix}" for suffix in PREFIXED_NAME.findall(text) for prefix in PREFIXES}
    return set(ENV_NAME.findall(text)) | prefixed


ARGUMENT_CALLS = [
    pytest.param(case, value, id=f"{case.argument}-{index}")
    for case in ARGUMENT_CASES
    for index, value in enumerate(case.values)
]


@pytest.mark.parametrize(("case", "value"), ARGUMENT_CALLS)
def test_every_defer_argument_with_a_wrong_type_or_value_is_refused_at_the_call(case, value) -> None:
    runner = DeferredTaskRunner()
    arguments: dict[str, Any] = {"task": lambda: None, "max_cost_seconds": 1, "name": "a.task"}
    if value is MISSING:
        del arguments[case.argument]
    else:
        arguments[case.argument] = value
    task = arguments.pop("task")

    with pytest.raises(case.error) as raised:
        runner.defer(task, **arguments)

    assert case.argument in str(raised.value)
    assert not runner.has_tasks()
    if case.argument == "name":
        with pytest.raises(case.error, match="name"):
            runner.forget(value)


@pytest.fixture
def shop(tmp_path) -> Iterator[TestApp]:
    container = build_container({"deferred_task.log_path": str(tmp_path / "deferred_task.log")}, environ={})
    container.logging.override(providers.Resource(no_logging_setup))
    router = make_configurator({"deferred_task.log_path": str(tmp_path / "deferred_task.log")},
                               container).make_wsgi_app()
    yield TestApp(router, extra_environ=BROWSER)
    get_hook(router.registry).worker.shutdown(grace_seconds=5)
    container.shutdown_resources()


REQUESTS = [
    pytest.param(case, id=f"{case.method} {case.path} {len(case.body or '')}B") for case in REQUEST_CASES
]


@pytest.mark.parametrize("case", REQUESTS)
def test_every_unreadable_request_is_a_400_with_nothing_deferred_and_one_info_line(
    case: RequestCase, shop: TestApp, deferred_tasks: DeferredTaskCapture, logs: LogCapture
) -> None:
    body = case.body.encode() if case.body is not None else b""
    answer = shop.request(case.path, method=case.method, body=body, content_type="application/json",
                          expect_errors=True)

    assert answer.status_int == 400
    if case.answer == API:
        assert answer.json == {"error": case.message}
    else:
        assert case.answer == PAGE
        assert answer.content_type != "application/json" and case.message in answer.text
    deferred_tasks.assert_nothing_deferred()
    assert logs.at("INFO") == [f"request refused (400) on {_route(case)}: {case.message}"]


ROUTES = {"/api/cart/items": "cart_items", "/api/checkout": "checkout", "/api/customers": "customers",
          "/api/ratings/wool-hat": "rating", "/api/bookmarks/wool-hat": "bookmark", "/search": "search",
          "/api/cart": "cart"}


def _route(case: RequestCase) -> str:
    """The route the log line names: none when the path itself could not be decoded for matching."""
    path = case.path.split("?")[0]
    return "no route" if "%ff" in path else ROUTES[path]


def test_the_readme_table_is_what_these_tests_try() -> None:
    assert readme_section(DOC.read_text()) == render(), (
        "docs/reliability.md's bad-input table is stale: run `python -m tests.reliability.bad_input --write`"
    )

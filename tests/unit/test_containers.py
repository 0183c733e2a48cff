"""The container: the request's runner from the add-on, the app's settings, the integrations."""

from __future__ import annotations

import contextvars
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from dependency_injector import providers
from pyramid_deferred import NoRunnerError, deferred_scope

from app.factory import build_container
from app.services import MatomoVisit
from config.settings import AppSettings
from containers import Container
from hooks import start_request_scope


def test_a_bare_container_works_with_the_documented_defaults():
    container = Container()
    assert container.config.app.log_path() == AppSettings().log_path
    assert container.config.app.metrics_enabled() is False
    with deferred_scope() as runner:
        assert container.deferred_task() is runner


def test_the_deferred_task_provider_is_the_current_request_s_runner():
    container = Container()
    with deferred_scope() as outer:
        assert container.deferred_task() is outer
        with deferred_scope() as inner:
            assert container.deferred_task() is inner
        assert container.deferred_task() is outer


def test_outside_a_request_the_provider_refuses_and_says_what_to_do():
    with pytest.raises(NoRunnerError, match="deferred_scope"):
        Container().deferred_task()


# --- Integrations ---


def no_logging():
    yield


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("META_CONNECT_TIMEOUT", "99", "META_CONNECT_TIMEOUT='99' is out of range"),
        ("META_PIXEL_ID", "1234567890", "META_PIXEL_ID set but META_ACCESS_TOKEN not"),
        ("ADVISABLE_AI_READ_TIMEOUT", "0", "ADVISABLE_AI_READ_TIMEOUT='0' is out of range"),
        ("MANAGO_BREAKER_FAIL_MAX", "0", "MANAGO_BREAKER_FAIL_MAX='0' is out of range"),
        ("MATOMO_SITE_ID", "seven", "MATOMO_SITE_ID='seven' is not a whole number"),
        ("CIRCUIT_BREAKER_REDIS_TIMEOUT", "-1", "CIRCUIT_BREAKER_REDIS_TIMEOUT='-1' is out of range"),
    ],
)
def test_a_bad_integration_setting_stops_build_container_with_the_services_error(variable, value, message):
    with pytest.raises(ValueError, match=message):
        build_container({}, environ={variable: value})


def test_a_secret_in_a_bad_setting_is_not_echoed():
    with pytest.raises(ValueError) as raised:
        build_container({}, environ={"CIRCUIT_BREAKER_REDIS_URL": "http://:hunter2@cache:6379"})
    assert "hunter2" not in str(raised.value)


def test_without_credentials_every_service_is_in_dry_run():
    container = build_container({}, environ={})
    settings = (container.meta_settings(), container.advisable_ai_settings(), container.matomo_settings())
    assert not any(s.live for s in settings if hasattr(s, "live"))
    assert container.manago_settings().base_url is None and container.matomo_settings().base_url is None


def test_each_service_is_one_object_per_container():
    container = build_container({}, environ={})
    assert container.meta() is container.meta() and container.manago() is container.manago()
    assert container.meta() is not build_container({}, environ={}).meta()


def test_a_redis_url_shares_the_breakers_and_none_keeps_them_in_memory():
    shared = build_container({}, environ={"CIRCUIT_BREAKER_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert shared.breaker_store().shared is True  # no connection is made until a breaker is used
    assert build_container({}, environ={}).breaker_store().shared is False
    shared.shutdown_resources()


def test_one_http_client_is_opened_on_first_use_not_at_start_up_and_closed_at_shutdown(monkeypatch):
    opened: list[httpx.Client] = []
    open_client = httpx.Client.__init__

    def recording_init(self: httpx.Client, *args: Any, **kwargs: Any) -> None:
        opened.append(self)
        open_client(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "__init__", recording_init)
    container = build_container({}, environ={})
    container.logging.override(providers.Resource(no_logging))
    container.init_resources()  # start-up (make_configurator): before a pre-forking server forks
    assert opened == []
    services = [container.meta(), container.advisable_ai(), container.manago(), container.matomo()]
    assert len(services) == 4 and opened == [container.http_client()]  # one, shared
    container.shutdown_resources()
    assert opened[0].is_closed


def test_the_matomo_tracker_is_one_per_request_and_reset_when_the_next_one_starts():
    container = build_container({}, environ={})
    event = SimpleNamespace(request=SimpleNamespace(registry=SimpleNamespace(container=container)))
    visit = MatomoVisit("http://shop.example/", "0123456789abcdef")

    start_request_scope(event)
    tracker = container.matomo_tracker(visit=visit)
    assert container.matomo_tracker() is tracker  # later lookups in the request need no visit
    other_request = contextvars.copy_context()
    other_request.run(start_request_scope, event)
    assert other_request.run(container.matomo_tracker, visit=visit) is not tracker
    assert container.matomo_tracker() is tracker  # a concurrent request does not disturb this one
    start_request_scope(event)  # the thread's next request
    assert container.matomo_tracker(visit=visit) is not tracker


def test_the_reset_also_reaches_an_override_of_the_tracker():
    container = build_container({}, environ={})
    event = SimpleNamespace(request=SimpleNamespace(registry=SimpleNamespace(container=container)))
    visit = MatomoVisit("http://shop.example/", "0123456789abcdef")
    with container.matomo_tracker.override(
        providers.ContextLocalSingleton(container.matomo().tracker, visit)
    ):
        first = container.matomo_tracker()
        start_request_scope(event)
        assert container.matomo_tracker() is not first

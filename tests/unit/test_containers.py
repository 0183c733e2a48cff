"""The container: one runner per request, wired from configuration; the integrations."""

from __future__ import annotations

import contextvars
import threading
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from dependency_injector import providers

from app.deferred_task import DeferredTaskRunner
from app.factory import build_container
from app.services import MatomoVisit
from app.views import start_request_scope
from containers import Container
from hooks.tween import fresh_runner


def make_container(**deferred_task) -> Container:
    container = Container()
    container.config.from_dict({"deferred_task": {"enabled": True, "budget_seconds": 10.0, **deferred_task}})
    return container


def test_runner_is_wired_from_configuration():
    runner = make_container(enabled=False, budget_seconds=2.5).deferred_task()
    assert isinstance(runner, DeferredTaskRunner)
    assert runner.enabled is False and runner.budget_seconds == 2.5


def test_same_runner_for_every_lookup_within_one_request():
    container = make_container()
    first = fresh_runner(container)
    assert container.deferred_task() is first and container.deferred_task() is first


def test_a_new_request_on_the_same_thread_gets_a_new_runner():
    container = make_container()
    first = fresh_runner(container)
    second = fresh_runner(container)
    assert second is not first and container.deferred_task() is second


def test_concurrent_requests_on_other_threads_get_their_own_runner():
    container = make_container()
    barrier = threading.Barrier(4)
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def request() -> None:
        runner = fresh_runner(container)
        barrier.wait(timeout=5)  # all four requests are in flight together
        with lock:
            seen.append((id(runner), id(container.deferred_task())))

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(seen) == 4
    assert all(mine == looked_up for mine, looked_up in seen)
    assert len({mine for mine, _ in seen}) == 4


def test_two_containers_do_not_share_runners():
    one, two = make_container(), make_container()
    assert fresh_runner(one) is not fresh_runner(two)


def test_an_override_is_what_requests_get():
    container = make_container()
    with container.deferred_task.override(
        providers.ContextLocalSingleton(DeferredTaskRunner, budget_seconds=1)
    ):
        first = fresh_runner(container)
        assert first is not None and first.budget_seconds == 1
        assert fresh_runner(container) is not first


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

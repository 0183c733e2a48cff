"""Faults of the integrations, through the shop's routes (WebTest), against local stubs only.

Each fault of ``FAULTS`` breaks every service at once (all four point at the same faulty base
URL); four orders are then placed, which defers 8 Meta, 8 Advisable AI, 4 Manago and 4 Matomo
calls (fail_max is 3, connect and read timeouts 0.1 s each).
For each fault: every response is the one a healthy run gives; every task ends within its
declared cost; each failing service fails ``fail_max`` times, then its breaker opens (once) and
no further request leaves; and the log has exactly one WARNING per failed call and one per
opened breaker, each with the service's name, and nothing else at WARNING or above.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from dependency_injector import providers
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from app.services import (
    AdvisableAISettings,
    BreakerStoreSettings,
    ManagoSettings,
    MatomoSettings,
    MetaSettings,
)
from app.services.secret import Secret
from tests.functional.services_stub import ADVISABLE_AI, MANAGO_UPSERT, MATOMO, META
from tests.functional.shop import place_order
from tests.integration.services import credentials
from tests.integration.services.credentials import REDIS_PASSWORD
from tests.integration.services.raw_servers import free_port, scripted_server, trickling_server
from tests.integration.services.redis_server import running_redis

SERVICES = ("meta", "advisable_ai", "manago", "matomo")
# Manago fails in every fault below: its task stops at the contact upsert, before the event.
PATHS = {"meta": META, "advisable_ai": ADVISABLE_AI, "manago": MANAGO_UPSERT, "matomo": MATOMO}
FAIL_MAX = 3
ORDERS = 4
PLACED = {"status": "placed", "total": 25.8, "currency": "EUR"}
TIMEOUT = "0.1"
OK_REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@dataclass(frozen=True)
class Fault:
    name: str
    failing: frozenset[str] = frozenset(SERVICES)
    reaches_a_server: bool = True
    reason: str = ""
    """Part of each failure's log line."""


FAULTS = {
    "connection-refused": Fault("connection-refused", reaches_a_server=False, reason="ConnectError"),
    "dns-failure": Fault("dns-failure", reaches_a_server=False, reason="ConnectError: resolving"),
    "read-timeout": Fault("read-timeout", reason="timed out (ReadTimeout)"),
    "slow-drip": Fault("slow-drip", reason="timed out"),
    "500-storm": Fault("500-storm", reason="HTTP 500"),
    "malformed-http": Fault("malformed-http", reason="RemoteProtocolError"),
    "malformed-body": Fault("malformed-body", failing=frozenset({"manago"}), reason="without a JSON answer"),
}
"""``malformed-body`` is a 200 whose body is not JSON: only SALESmanago's answer is read (Meta,
Advisable AI and Matomo need nothing from it), so only Manago counts it as a failure."""


@contextlib.contextmanager
def faulty_base_url(fault: Fault, httpserver: HTTPServer) -> Iterator[tuple[str, list[Any]]]:
    """The base URL every service is pointed at, and what reached it: one entry per request (its
    path) or, for the hand-written servers, per connection."""
    arrived: list[Any] = []
    if fault.name == "connection-refused":
        yield f"http://127.0.0.1:{free_port()}", arrived
    elif fault.name == "dns-failure":
        yield "http://shop-services.invalid", arrived
    elif fault.name in ("read-timeout", "slow-drip", "malformed-http"):
        accepted: list[Any] = []
        servers = {
            "read-timeout": lambda: scripted_server(OK_REPLY, delay=0.5, accepted=accepted),  # read: 0.1 s
            "slow-drip": lambda: trickling_server(header_drip=False, interval=0.05, accepted=accepted),
            "malformed-http": lambda: scripted_server(b"this is not HTTP at all\r\n\r\n", accepted=accepted),
        }
        with servers[fault.name]() as url:
            yield url, accepted
    else:
        def answer(request: Request) -> Response:
            arrived.append(request.path)
            if fault.name == "500-storm":
                return Response("internal error", status=500)
            return Response("<html>not json</html>", status=200, content_type="text/html")

        httpserver.expect_request("", method="POST").respond_with_handler(answer)
        yield httpserver.url_for("").rstrip("/"), arrived


def attempts_by_service(deferred_tasks) -> Counter[str]:
    return Counter(
        result.name.split(".")[0]
        for report in deferred_tasks.reports
        for result in report.results
        if result.outcome == "executed"
    )


def assert_every_task_ended_within_its_cost(deferred_tasks) -> None:
    results = [result for report in deferred_tasks.reports for result in report.results]
    # forgotten: the checkout's own forget() and unique Matomo flush; none failed, skipped, discarded
    assert results and {result.outcome for result in results} <= {"executed", "forgotten"}, results
    ran = [result for result in results if result.outcome == "executed"]
    slow = [r for r in ran if r.duration_seconds is None or r.duration_seconds > r.max_cost_seconds]
    assert not slow, f"tasks over their declared cost: {slow}"


def fast(prefix: str) -> dict[str, str]:
    return {f"{prefix}_CONNECT_TIMEOUT": TIMEOUT, f"{prefix}_READ_TIMEOUT": TIMEOUT}


def go_live(webapp, base_url: str) -> None:
    """Every integration live against ``base_url``: fail_max 3, timeouts of 0.1 s + 0.1 s."""
    container = webapp.app.registry.container
    overrides: list[tuple[Any, object]] = [
        (container.meta_settings,
         MetaSettings.from_environ(credentials.meta_env(base_url, **fast("META")))),
        (container.advisable_ai_settings,
         AdvisableAISettings.from_environ(credentials.advisable_ai_env(base_url, **fast("ADVISABLE_AI")))),
        (container.manago_settings,
         ManagoSettings.from_environ(credentials.manago_env(base_url, **fast("MANAGO")))),
        (container.matomo_settings,
         MatomoSettings.from_environ(credentials.matomo_env(base_url, **fast("MATOMO")))),
    ]
    for provider, settings in overrides:
        provider.override(providers.Object(settings))


def slowest_task(deferred_tasks) -> str:
    ran = [r for report in deferred_tasks.reports for r in report.results if r.duration_seconds is not None]
    worst = max(ran, key=lambda r: r.duration_seconds / r.max_cost_seconds)
    return f"slowest {worst.name}: {worst.duration_seconds:.3f}s of {worst.max_cost_seconds:.2f}s declared"


def kind(message: str) -> str:
    return "failed" if " failed after " in message else "opened" if " opened " in message else message


def warnings_and_errors(logs) -> list[tuple[str, str, str]]:
    return [
        (r["level"].name, str(r["extra"].get("service", "")), r["message"])
        for r in logs.records
        if r["level"].no >= 30
    ]


@pytest.mark.parametrize("fault", FAULTS.values(), ids=list(FAULTS))
def test_a_fault_never_changes_the_response_and_is_logged_once_per_call_until_the_breaker_opens(
    make_app, httpserver, deferred_tasks, logs, record_property, fault: Fault
):
    with faulty_base_url(fault, httpserver) as (base_url, reached):
        shop = make_app()
        go_live(shop, base_url)
        responses = [place_order(shop).json for _ in range(ORDERS)]

        assert [{key: r[key] for key in PLACED} for r in responses] == [PLACED] * ORDERS
        assert all(set(r) == {"order", "meta_event_id", *PLACED} for r in responses)
        assert all(r["meta_event_id"] == r["order"] for r in responses)  # Purchase: the order id
        assert_every_task_ended_within_its_cost(deferred_tasks)
        record_property("faults", slowest_task(deferred_tasks))

        attempts = attempts_by_service(deferred_tasks)
        assert attempts == {"meta": 8, "advisable_ai": 8, "manago": 4, "matomo": 4}
        failed_calls = {service: min(attempts[service], FAIL_MAX) for service in fault.failing}
        sent_calls = {service: attempts[service] for service in SERVICES if service not in fault.failing}
        expected_requests = sum(failed_calls.values()) + sum(sent_calls.values())
        assert len(reached) == (expected_requests if fault.reaches_a_server else 0), (
            "a request left for a service whose breaker was open"
        )
        if reached and isinstance(reached[0], str):  # the stub saw paths: per service
            by_service = {PATHS[s]: n for s, n in {**failed_calls, **sent_calls}.items()}
            assert Counter(reached) == by_service

    lines = warnings_and_errors(logs)
    expected = Counter()
    for service, count in failed_calls.items():
        expected[("WARNING", service, "failed")] += count
        expected[("WARNING", service, "opened")] += 1
    found = Counter((level, service, kind(message)) for level, service, message in lines)
    assert found == expected, lines
    for _, service, message in lines:
        assert service in message  # "meta.purchase failed after ...", "circuit for meta opened ..."
        if " failed after " in message:
            assert fault.reason in message, message


def test_redis_going_away_mid_run_changes_no_response_and_is_logged_once(
    make_app, httpserver: HTTPServer, deferred_tasks, logs, tmp_path, record_property
):
    """Breakers shared in Redis, services answering 500: Redis stops after the first order."""
    httpserver.expect_request("", method="POST").respond_with_data("internal error", status=500)
    port = free_port()
    shop = make_app()
    go_live(shop, httpserver.url_for("").rstrip("/"))
    shop.app.registry.container.breaker_store_settings.override(
        providers.Object(
            BreakerStoreSettings(
                redis_url=Secret(f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"), redis_timeout=0.05,
                redis_retry_after=30,
            )
        )
    )

    with running_redis(port, tmp_path, password=REDIS_PASSWORD):
        responses = [place_order(shop).json]
    responses += [place_order(shop).json for _ in range(ORDERS - 1)]

    assert [{key: r[key] for key in PLACED} for r in responses] == [PLACED] * ORDERS
    assert_every_task_ended_within_its_cost(deferred_tasks)
    record_property("faults", f"redis-gone-mid-run: {slowest_task(deferred_tasks)}")
    lines = warnings_and_errors(logs)
    redis_lines = [line for line in lines if line[1] == "circuit-breaker"]
    assert len(redis_lines) == 1 and "Redis for circuit-breaker state is unreachable" in redis_lines[0][2]
    opened = Counter(service for _, service, message in lines if " opened " in message)
    assert opened == dict.fromkeys(SERVICES, 1), lines
    failures = Counter(service for _, service, message in lines if " failed after " in message)
    # Failures counted in Redis before it went away are forgotten: local state counts afresh.
    assert all(FAIL_MAX <= failures[service] <= 2 * FAIL_MAX for service in SERVICES), failures
    assert len(lines) == 1 + sum(opened.values()) + sum(failures.values()), lines

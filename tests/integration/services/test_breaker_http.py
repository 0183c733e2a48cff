"""Circuit breaking against a real stub: a down service soon costs no requests at all."""

from __future__ import annotations

import statistics
import threading
import time

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from app.services.advisable_ai import AdvisableAIService, AdvisableAISettings, Signal, SignalType
from app.services.breaker import ServiceBreaker
from app.services.breaker_store import BreakerStore
from app.services.delivery import Outcome
from tests.integration.services.credentials import advisable_ai_env
from tests.integration.services.log_capture import LogCapture

RESET_TIMEOUT = 0.3
SIGNAL = Signal(SignalType.VIEW, item_id="p-1", session_id="s-1")


def make_ai(
    httpserver: HTTPServer, http: httpx.Client, store: BreakerStore, **extra: str
) -> tuple[AdvisableAIService, ServiceBreaker]:
    environ = advisable_ai_env(
        httpserver.url_for(""), ADVISABLE_AI_BREAKER_RESET_TIMEOUT=str(RESET_TIMEOUT), **extra
    )
    settings = AdvisableAISettings.from_environ(environ)
    breaker = store.breaker("advisable_ai", settings.breaker)
    return AdvisableAIService(settings, http, breaker), breaker


def answer(httpserver: HTTPServer, status: int) -> None:
    httpserver.clear_all_handlers()
    httpserver.expect_request("/v1/signals").respond_with_data("{}", status=status)


def test_a_5xx_streak_opens_the_breaker_after_fail_max_and_no_request_follows(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    answer(httpserver, 503)
    ai, breaker = make_ai(httpserver, http_client, store)

    outcomes = [ai.send_signal(SIGNAL) for _ in range(3)]  # fail_max is 3
    assert outcomes == [Outcome.FAILED] * 3
    assert breaker.current_state == "open"

    assert [ai.send_signal(SIGNAL) for _ in range(20)] == [Outcome.SKIPPED] * 20
    assert len(httpserver.log) == 3, "no request may reach the service while the circuit is open"
    assert len(logs.messages("DEBUG", service="advisable_ai")) >= 20
    assert any("opened" in m for m in logs.messages("WARNING", service="advisable_ai"))


def test_skipped_calls_return_in_well_under_5_ms(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    answer(httpserver, 500)
    ai, _ = make_ai(httpserver, http_client, store)
    for _ in range(3):
        ai.send_signal(SIGNAL)

    durations = []
    for _ in range(50):
        started = time.perf_counter()
        assert ai.send_signal(SIGNAL) is Outcome.SKIPPED
        durations.append(time.perf_counter() - started)

    assert statistics.median(durations) < 0.005


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_these_statuses_count_as_failures(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, status: int
) -> None:
    answer(httpserver, status)
    ai, breaker = make_ai(httpserver, http_client, store, ADVISABLE_AI_BREAKER_FAIL_MAX="1")

    assert ai.send_signal(SIGNAL) is Outcome.FAILED
    assert breaker.current_state == "open"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 301])
def test_other_refusals_are_our_bug_and_leave_the_breaker_closed(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, status: int
) -> None:
    answer(httpserver, status)
    ai, breaker = make_ai(httpserver, http_client, store, ADVISABLE_AI_BREAKER_FAIL_MAX="1")

    assert [ai.send_signal(SIGNAL) for _ in range(3)] == [Outcome.REJECTED] * 3
    assert breaker.current_state == "closed"


def test_a_success_resets_the_failure_streak(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    ai, breaker = make_ai(httpserver, http_client, store)
    for status in (503, 503, 202, 503, 503):
        answer(httpserver, status)
        ai.send_signal(SIGNAL)

    assert breaker.current_state == "closed"


def test_after_the_reset_timeout_one_probe_goes_through_and_its_success_closes_the_breaker(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    answer(httpserver, 503)
    ai, breaker = make_ai(httpserver, http_client, store)
    for _ in range(3):
        ai.send_signal(SIGNAL)
    assert ai.send_signal(SIGNAL) is Outcome.SKIPPED

    time.sleep(RESET_TIMEOUT + 0.05)
    answer(httpserver, 202)

    assert ai.send_signal(SIGNAL) is Outcome.SENT
    assert breaker.current_state == "closed"
    assert [ai.send_signal(SIGNAL) for _ in range(2)] == [Outcome.SENT] * 2


def test_a_failed_probe_opens_the_breaker_for_another_reset_timeout(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    answer(httpserver, 503)
    ai, breaker = make_ai(httpserver, http_client, store)
    for _ in range(3):
        ai.send_signal(SIGNAL)
    time.sleep(RESET_TIMEOUT + 0.05)
    requests_before_probe = len(httpserver.log)

    assert ai.send_signal(SIGNAL) is Outcome.FAILED
    assert breaker.current_state == "open"
    assert ai.send_signal(SIGNAL) is Outcome.SKIPPED
    assert len(httpserver.log) == requests_before_probe + 1


def test_while_the_probe_is_in_flight_every_other_call_is_skipped(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    answer(httpserver, 503)
    ai, breaker = make_ai(httpserver, http_client, store, ADVISABLE_AI_READ_TIMEOUT="2")
    for _ in range(3):
        ai.send_signal(SIGNAL)
    time.sleep(RESET_TIMEOUT + 0.05)

    probe_arrived, let_probe_finish = threading.Event(), threading.Event()

    def slow_success(request: Request) -> Response:
        probe_arrived.set()
        let_probe_finish.wait(5)
        return Response(status=202)

    httpserver.clear_all_handlers()
    httpserver.expect_request("/v1/signals").respond_with_handler(slow_success)
    requests_before_probe = len(httpserver.log)
    probe_outcome: list[Outcome] = []
    probe = threading.Thread(target=lambda: probe_outcome.append(ai.send_signal(SIGNAL)))
    probe.start()
    assert probe_arrived.wait(5)

    others: list[Outcome] = []
    threads = [
        threading.Thread(target=lambda: others.append(ai.send_signal(SIGNAL))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert breaker.current_state == "half-open"
    let_probe_finish.set()
    probe.join(5)

    assert others == [Outcome.SKIPPED] * 8
    assert probe_outcome == [Outcome.SENT]
    assert len(httpserver.log) == requests_before_probe + 1
    assert breaker.current_state == "closed"


def test_concurrent_calls_do_not_wait_for_each_other(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore
) -> None:
    """pybreaker's call() would hold its lock across the request and serialise these."""
    both_inside = threading.Barrier(2, timeout=3)

    def meet(request: Request) -> Response:
        both_inside.wait()  # only returns once the other request is in flight too
        return Response(status=202)

    httpserver.expect_request("/v1/signals").respond_with_handler(meet)
    ai, _ = make_ai(httpserver, http_client, store, ADVISABLE_AI_READ_TIMEOUT="5")
    outcomes: list[Outcome] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(ai.send_signal(SIGNAL))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert outcomes == [Outcome.SENT, Outcome.SENT]

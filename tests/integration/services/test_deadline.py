"""The declared cost is a real upper bound: slow and trickling servers cannot stretch a task."""

from __future__ import annotations

import time

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from app.services.advisable_ai import AdvisableAIService, AdvisableAISettings, Signal, SignalType
from app.services.breaker_store import BreakerStore
from app.services.delivery import Outcome
from tests.integration.services.credentials import advisable_ai_env
from tests.integration.services.log_capture import LogCapture
from tests.integration.services.raw_servers import free_port, trickling_server

# Each byte arrives well within the 0.2 s read timeout; the whole answer takes over 1 s.
TRICKLE_INTERVAL = 0.05
SIGNAL = Signal(SignalType.VIEW, item_id="p-1", session_id="s-1")


def make_ai(
    base_url: str, http: httpx.Client, store: BreakerStore, **extra: str
) -> AdvisableAIService:
    settings = AdvisableAISettings.from_environ(advisable_ai_env(base_url, **extra))
    return AdvisableAIService(settings, http, store.breaker("advisable_ai", settings.breaker))


def timed_send(service: AdvisableAIService) -> tuple[Outcome, float]:
    started = time.monotonic()
    outcome = service.send_signal(SIGNAL)
    return outcome, time.monotonic() - started


def test_max_cost_is_the_sum_of_the_timeouts_plus_a_local_allowance(
    http_client: httpx.Client, store: BreakerStore
) -> None:
    ai = make_ai("http://127.0.0.1:9", http_client, store)

    assert ai.max_cost_seconds == pytest.approx(0.2 + 0.2 + 0.1)


def test_a_server_sleeping_past_the_read_timeout_ends_the_task_within_its_cost(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    def sleepy(request: Request) -> Response:
        time.sleep(0.6)
        return Response(status=202)

    httpserver.expect_request("/v1/signals").respond_with_handler(sleepy)
    ai = make_ai(httpserver.url_for(""), http_client, store)

    outcome, elapsed = timed_send(ai)

    assert outcome is Outcome.FAILED
    assert elapsed <= ai.max_cost_seconds
    assert "timed out" in logs.messages("WARNING", service="advisable_ai")[0]


@pytest.mark.parametrize("header_drip", [True, False], ids=["trickled-headers", "trickled-body"])
def test_a_trickling_server_cannot_keep_the_task_past_its_cost(
    http_client: httpx.Client, store: BreakerStore, header_drip: bool
) -> None:
    with trickling_server(header_drip=header_drip, interval=TRICKLE_INTERVAL) as url:
        ai = make_ai(url, http_client, store)

        outcome, elapsed = timed_send(ai)

    assert outcome is Outcome.FAILED
    assert elapsed <= ai.max_cost_seconds


def test_per_read_timeouts_alone_would_let_the_trickle_through() -> None:
    """The trickling server really defeats httpx's own timeouts: the test above means something."""
    with trickling_server(header_drip=False, interval=TRICKLE_INTERVAL) as url:
        started = time.monotonic()
        with httpx.Client(timeout=httpx.Timeout(0.2)) as plain:
            response = plain.post(url, content=b"{}")

    assert response.status_code == 200
    assert time.monotonic() - started > 0.2 + 0.2 + 0.1


def test_a_refused_connection_is_a_failure_within_the_cost(
    http_client: httpx.Client, store: BreakerStore
) -> None:
    ai = make_ai(f"http://127.0.0.1:{free_port()}", http_client, store)

    outcome, elapsed = timed_send(ai)

    assert outcome is Outcome.FAILED
    assert elapsed <= ai.max_cost_seconds

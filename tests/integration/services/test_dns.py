"""A configured host name that does not resolve: a failure within the declared cost, logged once.

``.invalid`` names never resolve (RFC 6761) and the tests never need a DNS server to answer:
the first one gets the system resolver's own "not found"; the second replaces
``socket.getaddrinfo`` with one that never answers, as on a machine whose DNS server is
unreachable, and shows that the exchange's deadline cuts the resolution short.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.services.advisable_ai import AdvisableAIService, AdvisableAISettings, Signal, SignalType
from app.services.breaker_store import BreakerStore
from app.services.delivery import Outcome
from tests.integration.services.credentials import advisable_ai_env
from tests.integration.services.log_capture import LogCapture

UNRESOLVABLE = "http://advisable-ai.invalid"
SIGNAL = Signal(SignalType.VIEW, item_id="p-1", session_id="s-1")


def make_ai(http: httpx.Client, store: BreakerStore) -> AdvisableAIService:
    settings = AdvisableAISettings.from_environ(advisable_ai_env(UNRESOLVABLE))
    return AdvisableAIService(settings, http, store.breaker("advisable_ai", settings.breaker))


def timed_send(service: AdvisableAIService) -> tuple[Outcome, float]:
    started = time.monotonic()
    outcome = service.send_signal(SIGNAL)
    return outcome, time.monotonic() - started


@pytest.fixture
def resolver_that_never_answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """``getaddrinfo`` blocks for ``.invalid`` names until the test ends (then it fails)."""
    release = threading.Event()
    real = socket.getaddrinfo

    def hanging(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".invalid"):
            release.wait(10)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    yield release
    release.set()


def test_an_unresolvable_host_name_fails_within_the_cost_and_is_logged_once(
    http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    ai = make_ai(http_client, store)

    outcome, elapsed = timed_send(ai)

    assert outcome is Outcome.FAILED
    assert elapsed <= ai.max_cost_seconds
    [line] = logs.messages("WARNING", service="advisable_ai")
    assert line.startswith("advisable_ai.view failed after") and "advisable-ai.invalid" in line


def test_a_resolver_that_never_answers_is_cut_short_by_the_deadline(
    http_client: httpx.Client,
    store: BreakerStore,
    logs: LogCapture,
    resolver_that_never_answers: threading.Event,
) -> None:
    ai = make_ai(http_client, store)

    outcomes = [timed_send(ai) for _ in range(3)]  # fail_max is 3: the breaker opens

    assert [outcome for outcome, _ in outcomes] == [Outcome.FAILED] * 3
    assert all(elapsed <= ai.max_cost_seconds for _, elapsed in outcomes)
    assert timed_send(ai)[0] is Outcome.SKIPPED
    warnings = logs.messages("WARNING", service="advisable_ai")
    assert sum("failed after" in line and "timed out" in line for line in warnings) == 3
    assert sum("circuit for advisable_ai opened" in line for line in warnings) == 1
    assert len(warnings) == 4

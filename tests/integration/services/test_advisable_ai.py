"""Advisable AI against a local stub: one authenticated JSON signal per user action."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from pytest_httpserver import HTTPServer

from app.services.advisable_ai import AdvisableAIService, AdvisableAISettings, Signal, SignalType
from app.services.breaker_store import BreakerStore
from app.services.delivery import Outcome
from tests.integration.services.credentials import ADVISABLE_AI_API_KEY, advisable_ai_env
from tests.integration.services.log_capture import LogCapture

MOMENT = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)


def make_ai(environ: dict[str, str], http: httpx.Client, store: BreakerStore) -> AdvisableAIService:
    settings = AdvisableAISettings.from_environ(environ)
    return AdvisableAIService(settings, http, store.breaker("advisable_ai", settings.breaker))


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        (
            Signal(SignalType.RATING, item_id="p-7", user_id="u-1", value=4, timestamp=MOMENT),
            {"type": "rating", "user_id": "u-1", "item_id": "p-7", "value": 4},
        ),
        (
            Signal(SignalType.BOOKMARK, item_id="p-7", session_id="s-9", timestamp=MOMENT),
            {"type": "bookmark", "session_id": "s-9", "item_id": "p-7"},
        ),
        (
            Signal(SignalType.SESSION_SWITCH, user_id="u-1", session_id="s-9", timestamp=MOMENT),
            {"type": "session_switch", "user_id": "u-1", "session_id": "s-9"},
        ),
    ],
    ids=["rating", "bookmark", "session_switch"],
)
def test_each_signal_is_posted_as_one_json_object_with_a_bearer_key(
    httpserver: HTTPServer,
    http_client: httpx.Client,
    store: BreakerStore,
    signal: Signal,
    expected: dict[str, object],
) -> None:
    httpserver.expect_request("/v1/signals", method="POST").respond_with_data(status=202)
    ai = make_ai(advisable_ai_env(httpserver.url_for("")), http_client, store)

    assert ai.send_signal(signal) is Outcome.SENT

    ((request, _),) = httpserver.log
    assert request.headers["Authorization"] == f"Bearer {ADVISABLE_AI_API_KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.get_data()) == {
        **expected,
        "timestamp": "2026-03-14T15:09:26.535+00:00",
    }


def test_without_credentials_the_signal_is_only_logged(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    ai = make_ai({}, http_client, store)
    signal = Signal(SignalType.VIEW, item_id="p-7", session_id="s-9", timestamp=MOMENT)

    assert ai.send_signal(signal) is Outcome.DRY_RUN

    assert httpserver.log == []
    (line,) = logs.messages("INFO", service="advisable_ai")
    assert line == "advisable_ai.view dry-run (no credentials configured), not sent: item p-7, 94 bytes"
    assert "s-9" not in line, "the visitor id is a digest of a session cookie"

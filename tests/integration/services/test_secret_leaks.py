"""Secrets stay out of logs even when a service echoes our request back in its error answer.

The autouse ``logs`` fixture already fails any test whose log output contains a secret;
these tests provoke the worst cases on purpose, for every service.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from app.services.advisable_ai import AdvisableAIService, AdvisableAISettings, Signal, SignalType
from app.services.breaker_store import BreakerStore
from app.services.delivery import SNIPPET_CHARS, Outcome
from app.services.manago import ManagoPurchase, ManagoService, ManagoSettings
from app.services.matomo import MatomoService, MatomoSettings, MatomoVisit
from app.services.meta import (
    MetaConversionsService,
    MetaCustomData,
    MetaEvent,
    MetaEventName,
    MetaSettings,
    MetaUserData,
)
from app.services.secret import MASK
from tests.integration.services.credentials import (
    META_ACCESS_TOKEN,
    advisable_ai_env,
    manago_env,
    matomo_env,
    meta_env,
)
from tests.integration.services.log_capture import LogCapture

Send = Callable[[], Outcome]


def meta_send(base: str, http: httpx.Client, store: BreakerStore) -> Send:
    settings = MetaSettings.from_environ(meta_env(base))
    meta = MetaConversionsService(settings, http, store.breaker("meta", settings.breaker))
    user = MetaUserData("203.0.113.7", "Mozilla/5.0", email="a@b.example")
    event = MetaEvent(
        MetaEventName.VIEW_CONTENT, "https://shop.example/p/1", user, MetaCustomData()
    )
    return lambda: meta.send_event(event)


def advisable_ai_send(base: str, http: httpx.Client, store: BreakerStore) -> Send:
    settings = AdvisableAISettings.from_environ(advisable_ai_env(base))
    ai = AdvisableAIService(settings, http, store.breaker("advisable_ai", settings.breaker))
    return lambda: ai.send_signal(Signal(SignalType.VIEW, item_id="p-1", session_id="s-1"))


def manago_send(base: str, http: httpx.Client, store: BreakerStore) -> Send:
    settings = ManagoSettings.from_environ(manago_env(base))
    manago = ManagoService(settings, http, store.breaker("manago", settings.breaker))
    order = ManagoPurchase("a@b.example", "o-1", ("p-1",), 10.0, "EUR")
    return lambda: manago.send_purchase(order)


def matomo_send(base: str, http: httpx.Client, store: BreakerStore) -> Send:
    settings = MatomoSettings.from_environ(matomo_env(base))
    matomo = MatomoService(settings, http, store.breaker("matomo", settings.breaker))

    def send() -> Outcome:
        tracker = matomo.tracker(MatomoVisit("https://shop.example/", "0123456789abcdef"))
        tracker.track_page_view("Home")
        return tracker.flush()

    return send


SERVICES = [meta_send, advisable_ai_send, manago_send, matomo_send]


def echo(status: int) -> Callable[[Request], Response]:
    """An error answer quoting our credentials back, as some gateways do: the Authorization
    header and the body's fields last to first (the body's credentials come last)."""

    def handler(request: Request) -> Response:
        fields = list(json.loads(request.get_data()).items())
        quoted = f"auth={request.headers.get('Authorization')} body={dict(reversed(fields))}"
        return Response(quoted, status=status)

    return handler


@pytest.mark.parametrize("status", [400, 500])
@pytest.mark.parametrize("make_send", SERVICES, ids=lambda f: f.__name__)
def test_an_error_answer_echoing_the_request_is_logged_masked(
    httpserver: HTTPServer,
    http_client: httpx.Client,
    store: BreakerStore,
    logs: LogCapture,
    make_send: Callable[[str, httpx.Client, BreakerStore], Send],
    status: int,
) -> None:
    httpserver.expect_request(re.compile(".*"), method="POST").respond_with_handler(echo(status))
    send = make_send(httpserver.url_for("").rstrip("/"), http_client, store)

    outcome = send()

    assert outcome in (Outcome.REJECTED, Outcome.FAILED)
    assert len(httpserver.log) == 1
    assert MASK in logs.text  # the echoed secret was there, and was masked


def test_a_secret_cut_by_the_snippet_length_is_still_masked_whole(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    straddling = "x" * (SNIPPET_CHARS - 5) + META_ACCESS_TOKEN
    httpserver.expect_request(re.compile(".*")).respond_with_data(straddling, status=400)
    send = meta_send(httpserver.url_for("").rstrip("/"), http_client, store)

    assert send() is Outcome.REJECTED

    (line,) = logs.messages("ERROR", service="meta")
    assert line.endswith("x" * 5 + MASK)
    assert META_ACCESS_TOKEN[:5] not in logs.text

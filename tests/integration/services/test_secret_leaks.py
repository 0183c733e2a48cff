"""Secrets and personal data stay out of logs even when a service echoes our request back in its
error answer: the failure line gives the status, the size and the answer's numeric error codes,
never its text.

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
from app.services.delivery import Outcome
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
from tests.integration.services.credentials import (
    META_ACCESS_TOKEN,
    advisable_ai_env,
    manago_env,
    matomo_env,
    meta_env,
)
from tests.integration.services.log_capture import LogCapture

Send = Callable[[], Outcome]
EMAIL = "jane.doe@example.com"
CLIENT_IP = "203.0.113.7"


def meta_send(base: str, http: httpx.Client, store: BreakerStore) -> Send:
    settings = MetaSettings.from_environ(meta_env(base))
    meta = MetaConversionsService(settings, http, store.breaker("meta", settings.breaker))
    user = MetaUserData(CLIENT_IP, "Mozilla/5.0", email=EMAIL)
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
    order = ManagoPurchase(EMAIL, "o-1", ("p-1",), 10.0, "EUR")
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
def test_an_error_answer_echoing_the_request_is_logged_by_status_and_size_only(
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
    [request] = [request for request, _ in httpserver.log]
    [line] = logs.messages("WARNING") + logs.messages("ERROR")
    assert f"HTTP {status}, " in line and " bytes" in line
    echoed = request.get_data(as_text=True)
    assert not [value for value in (EMAIL, CLIENT_IP, "Mozilla", "auth=", "body=") if value in line], line
    assert echoed[:40] not in line


def test_an_error_answer_s_numeric_codes_are_logged_its_text_is_not(
    httpserver: HTTPServer, http_client: httpx.Client, store: BreakerStore, logs: LogCapture
) -> None:
    answer = {"error": {"message": f"Invalid parameter {EMAIL} {META_ACCESS_TOKEN}", "type": "OAuthException",
                        "code": 100, "error_subcode": 2804003, "fbtrace_id": "A1b2"}}
    httpserver.expect_request(re.compile(".*")).respond_with_json(answer, status=400)
    send = meta_send(httpserver.url_for("").rstrip("/"), http_client, store)

    assert send() is Outcome.REJECTED

    (line,) = logs.messages("ERROR", service="meta")
    assert line.endswith("(code 100, error_subcode 2804003)")
    assert "Invalid parameter" not in line and EMAIL not in line and "OAuthException" not in line

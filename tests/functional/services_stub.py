"""The shop's integrations live against a local stub of each service (pytest-httpserver on
127.0.0.1), and what the stub received: how the functional tests see what the shop sends.

The services are pointed at the stub the dependency-injector way: the container's settings
providers are overridden before the first request builds the services.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from dependency_injector import providers
from pytest_httpserver import HTTPServer
from webtest import TestApp

from app.services import AdvisableAISettings, ManagoSettings, MatomoSettings, MetaSettings
from app.services.meta import API_VERSION
from tests.integration.services import credentials

META = f"/{API_VERSION}/{credentials.META_PIXEL_ID}/events"
ADVISABLE_AI = "/v1/signals"
MANAGO = "/api/v2/contact/addContactExtEvent"
MANAGO_UPSERT = "/api/contact/upsert"
MATOMO = "/matomo.php"


def answer_like_the_services(httpserver: HTTPServer) -> None:
    httpserver.expect_request(META, method="POST").respond_with_json({"events_received": 1})
    httpserver.expect_request(ADVISABLE_AI, method="POST").respond_with_json({"accepted": True})
    httpserver.expect_request(MANAGO_UPSERT, method="POST").respond_with_json({"success": True})
    httpserver.expect_request(MANAGO, method="POST").respond_with_json({"success": True})
    httpserver.expect_request(MATOMO, method="POST").respond_with_json(
        {"status": "success", "tracked": 1, "invalid": 0}
    )


def go_live(webapp: TestApp, base_url: str) -> None:
    """Every integration live against ``base_url``, with the fast timeouts and fail_max=3."""
    container = webapp.app.registry.container
    container.meta_settings.override(
        providers.Object(MetaSettings.from_environ(credentials.meta_env(base_url)))
    )
    container.advisable_ai_settings.override(
        providers.Object(AdvisableAISettings.from_environ(credentials.advisable_ai_env(base_url)))
    )
    container.manago_settings.override(
        providers.Object(ManagoSettings.from_environ(credentials.manago_env(base_url)))
    )
    container.matomo_settings.override(
        providers.Object(MatomoSettings.from_environ(credentials.matomo_env(base_url)))
    )


def received(httpserver: HTTPServer, path: str) -> list[tuple[Any, dict[str, Any]]]:
    return [(r, json.loads(r.get_data())) for r, _ in httpserver.log if r.path == path]


def meta_events(httpserver: HTTPServer, event_name: str) -> list[dict[str, Any]]:
    events = [body["data"][0] for _, body in received(httpserver, META)]
    return [event for event in events if event["event_name"] == event_name]


def ai_signals(httpserver: HTTPServer, signal_type: str) -> list[dict[str, Any]]:
    return [body for _, body in received(httpserver, ADVISABLE_AI) if body["type"] == signal_type]


def matomo_calls(body: dict[str, Any]) -> list[dict[str, str]]:
    return [dict(parse_qsl(call.removeprefix("?"))) for call in body["requests"]]


def all_matomo_calls(httpserver: HTTPServer) -> list[dict[str, str]]:
    return [call for _, body in received(httpserver, MATOMO) for call in matomo_calls(body)]

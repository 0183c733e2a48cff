"""``metrics.token``: the endpoint answers only a scrape that sends it (Bearer, or basic auth's
password), 401 without credentials and 403 with wrong ones; without it the endpoint is open."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from pyramid.config import Configurator
from webtest import TestApp

from pyramid_deferred.metrics import MetricsSettings
from pyramid_deferred.settings import load
from pyramid_deferred.values import ConfigError

TOKEN = "gxsE6c03jBhLSf8f0wWYGQTFxtsISxvKLAdAYCpWVT8"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def make_app(serve: Callable[[Configurator], TestApp]) -> Callable[..., TestApp]:
    def make(**settings: str) -> TestApp:
        config = Configurator(settings=settings)
        config.include("pyramid_deferred")
        config.include("pyramid_deferred.metrics")
        return serve(config)

    return make


def test_without_credentials_a_protected_endpoint_is_a_401_naming_the_schemes(make_app):
    app = make_app(**{"metrics.token": TOKEN})

    answer = app.get("/metrics", status=401)

    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="metrics", Basic realm="metrics"'
    assert "deferred_task" not in answer.text and answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("authorization", [
    "Bearer Hs8d_Qm3Vx-6Rk1Tp9Ly4Wx", "Bearer ", "Bearer", basic("prometheus", "wrong"),
    basic("prometheus", ""), "Basic not-base64!", basic(TOKEN, "x"),
], ids=["wrong-bearer", "empty-bearer", "bare-bearer", "wrong-password", "empty-password", "malformed",
        "token-as-user"])
def test_wrong_credentials_are_a_403(make_app, authorization):
    app = make_app(**{"metrics.token": TOKEN})
    answer = app.get("/metrics", headers={"Authorization": authorization}, status=403)
    assert "deferred_task" not in answer.text


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}", basic("prometheus", TOKEN), basic("", TOKEN)],
                         ids=["bearer", "basic", "basic-no-user"])
def test_the_token_opens_it_as_prometheus_sends_it(make_app, authorization):
    app = make_app(**{"metrics.token": TOKEN})
    answer = app.get("/metrics", headers={"Authorization": authorization}, status=200)
    assert "deferred_tasks_per_request" in answer.text


def test_without_a_token_the_endpoint_is_open(make_app):
    assert "deferred_tasks_per_request" in make_app().get("/metrics", status=200).text


def test_a_guessable_token_stops_start_up_and_the_token_is_in_no_repr(make_app):
    with pytest.raises(ConfigError, match=r"metrics\.token .* too easy to guess") as raised:
        make_app(**{"metrics.token": "metrics-password" * 2})
    assert "metrics-password" not in str(raised.value)
    settings = load(MetricsSettings, {"metrics.token": TOKEN}, {})
    assert settings.token == TOKEN and TOKEN not in repr(settings)

"""Behind the TLS proxy the example documents: the real servers with the shipped settings
(production.ini's ``[server:main]`` for waitress, ``gunicorn.conf.py`` for gunicorn) believe the
proxy on 127.0.0.1 about https, so the shop's and the live page's cookies get ``Secure``; waitress
also takes the client's address from it. Where the request says nothing, nothing is ``Secure``.
The URL sent to Meta is on ``APP_PUBLIC_ORIGIN`` whatever Host the request names."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.functional.services_stub import META, meta_events
from tests.functional.shop import USER_AGENT
from tests.integration.services import credentials
from tests.servers.servers import GUNICORN_CONF, HOST, WORKTREE, free_port, poll, stop

pytestmark = pytest.mark.servers

PRODUCTION_INI = WORKTREE / "config" / "production.ini"
ORIGIN = "https://shop.example"
TOKEN = "be3zq05hukpoYGcylXnXqkcoTKzCgXxRD_IF8qDl1tk"
PROXY_CLIENT = "198.51.100.23"
SCRUBBED = ("APP_", "DEFERRED_TASK_", "META_", "ADVISABLE_AI_", "MANAGO_", "MATOMO_", "CIRCUIT_BREAKER_",
            "PROMETHEUS_", "FORWARDED_ALLOW_IPS")


def waitress_command(port: int) -> list[str]:
    return [sys.executable, "-m", "tests.servers.ini_server", str(PRODUCTION_INI), f"{HOST}:{port}"]


def gunicorn_command(port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF), "--bind", f"{HOST}:{port}",
            "--workers", "1", "--paste", str(PRODUCTION_INI)]


Server = Callable[..., http.client.HTTPResponse]


@pytest.fixture(params=[waitress_command, gunicorn_command], ids=["waitress", "gunicorn"])
def server(request, httpserver: HTTPServer, tmp_path: Path) -> Iterator[tuple[str, Server]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env.update(
        PYTHONPATH=str(WORKTREE), PYTHONUNBUFFERED="1", APP_PUBLIC_ORIGIN=ORIGIN,
        APP_DASHBOARD_ENABLED="true", APP_DASHBOARD_TOKEN=TOKEN, WEB_CONCURRENCY="1",
        DEFERRED_TASK_LOG_PATH=str(tmp_path / "deferred_task.log"),
        **credentials.meta_env(httpserver.url_for("").rstrip("/")),
    )
    httpserver.expect_request(META, method="POST").respond_with_json({"events_received": 1})
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(request.param(port), cwd=WORKTREE, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)

    def send(method: str, path: str, headers: dict[str, str] | None = None,
             body: str | None = None) -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        connection.request(method, path, body=body, headers={"User-Agent": USER_AGENT, **(headers or {})})
        response = connection.getresponse()
        response.read()
        connection.close()
        return response

    def ready() -> bool:
        try:
            return send("GET", "/health").status == 200
        except OSError:
            return False

    try:
        if not poll(ready, timeout=30, interval=0.1):
            pytest.fail("the server did not start:\n" + log_path.read_text()[-3000:])
        yield request.param.__name__.removesuffix("_command"), send
    finally:
        stop(process)


def cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    return {value.split("=", 1)[0]: value for value in response.headers.get_all("Set-Cookie") or []}


def is_secure(cookie: str) -> bool:
    return "; secure" in cookie.lower()


def test_the_proxy_s_https_makes_the_shop_s_cookies_secure(server):
    _, send = server

    behind_tls = cookies(send("GET", "/products/wool-hat", {"X-Forwarded-Proto": "https"}))
    plain = cookies(send("GET", "/products/wool-hat"))

    assert set(behind_tls) >= {"shop_session", "shop_visitor"}
    assert all(is_secure(cookie) for cookie in behind_tls.values()), behind_tls
    assert not any(is_secure(cookie) for cookie in plain.values()), plain


def test_the_proxy_s_https_makes_the_live_page_s_login_cookie_secure(server):
    _, send = server
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    behind_tls = send("POST", "/_deferred", {**form, "X-Forwarded-Proto": "https"}, f"token={TOKEN}")
    plain = send("POST", "/_deferred", form, f"token={TOKEN}")

    assert behind_tls.status == plain.status == 303
    assert is_secure(cookies(behind_tls)["deferred_dashboard"])
    assert not is_secure(cookies(plain)["deferred_dashboard"])


def test_meta_gets_the_public_origin_s_url_and_waitress_takes_the_client_from_the_proxy(
    server, httpserver: HTTPServer
):
    name, send = server
    headers = {"Host": "evil.example", "X-Forwarded-For": PROXY_CLIENT, "X-Forwarded-Proto": "https"}

    assert send("GET", "/products/wool-hat?email=jane%40example.com&utm_source=news", headers).status == 200

    events = poll(lambda: meta_events(httpserver, "ViewContent"), timeout=10)
    assert events, "no ViewContent reached the stub"
    [event] = events
    assert event["event_source_url"] == f"{ORIGIN}/products/wool-hat?utm_source=news"
    # gunicorn does not take the client's address from X-Forwarded-For (docs: PROXY protocol)
    expected_client = PROXY_CLIENT if name == "waitress" else HOST
    assert event["user_data"]["client_ip_address"] == expected_client

"""Who gets into the dashboard: expiring login cookies, logout, ``Secure``, throttled guessing,
cross-site logins refused, weak tokens refused at start-up, and the token out of every repr.

Time is a fake clock set on the app's guard; requests come from the addresses given in their
environ (``REMOTE_ADDR``), as a server or a trusted proxy sets it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from pyramid.config import Configurator
from webtest import TestApp

from pyramid_deferred.dashboard import DashboardSettings, get_dashboard
from pyramid_deferred.dashboard.access import COOKIE_NAME, TOKEN_HEADER
from pyramid_deferred.values import ConfigError

TOKEN = "GsDLMjeR2BXhtlY8YF_7yhr1VGOmBgUpDwYndV7hyds"
WRONG = "Yk3w-7sU_je1KvQ8wGm2lXb5"
ATTACKER, ADMIN, OTHER = "198.51.100.66", "192.0.2.10", "192.0.2.20"
START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_app(serve: Callable[[Configurator], TestApp], clock: Clock) -> Callable[..., TestApp]:
    def make(**settings: str) -> TestApp:
        config = Configurator(settings={"dashboard.token": TOKEN, **settings})
        config.include("pyramid_deferred")
        config.include("pyramid_deferred.dashboard")
        app = serve(config)
        get_dashboard(app.app.registry).guard.clock = clock
        return app

    return make


def from_(address: str) -> dict[str, Any]:
    return {"extra_environ": {"REMOTE_ADDR": address}}


def login(app: TestApp, token: str = TOKEN, *, status: int = 303, address: str = ADMIN,
          headers: dict[str, str] | None = None) -> Any:
    return app.post("/_deferred", {"token": token}, status=status, headers=headers or {}, **from_(address))


def set_cookie(response: Any) -> str:
    [cookie] = [value for name, value in response.headerlist if name == "Set-Cookie"]
    return str(cookie)


# --- the login cookie ---


def test_a_login_cookie_carries_its_issue_time_and_a_nonce_and_expires(make_app, clock):
    app = make_app(**{"dashboard.login_hours": "2"})

    cookie = set_cookie(login(app))
    value = app.cookies[COOKIE_NAME]

    assert re.fullmatch(rf"v1\.{int(START)}\.[0-9a-f]{{32}}\.[0-9a-f]{{64}}", value), value
    assert "Max-Age=7200" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert TOKEN not in cookie
    clock.now = START + 7199
    app.get("/_deferred", status=200)
    clock.now = START + 7200  # the browser may keep it: the server refuses it
    app.get("/_deferred", status=403)
    app.get("/_deferred/data.json", status=403)


def test_each_login_gets_a_cookie_of_its_own(make_app):
    app = make_app()
    login(app)
    first = app.cookies[COOKIE_NAME]
    app.reset()
    login(app)
    assert app.cookies[COOKIE_NAME] != first


def test_a_cookie_with_a_later_issue_time_is_refused(make_app, clock):
    app = make_app(**{"dashboard.login_hours": "1"})
    login(app)
    value = app.cookies[COOKIE_NAME]
    app.set_cookie(COOKIE_NAME, value.replace(f"v1.{int(START)}.", f"v1.{int(START) + 3000}.", 1))

    app.get("/_deferred", status=403)


def test_a_new_token_ends_every_login(make_app):
    old = make_app()
    login(old)
    cookie = old.cookies[COOKIE_NAME]
    rotated = make_app(**{"dashboard.token": "B6f94uZzZuRlVsOKLY6-oEggfJr2f1UhqyZ5btuYdcw"})

    rotated.set_cookie(COOKIE_NAME, cookie)
    rotated.get("/_deferred", status=403)


def test_logout_ends_the_login_in_the_browser(make_app):
    app = make_app()
    login(app)
    page = app.get("/_deferred")
    assert '<form method="post" action="/_deferred/logout"' in page.text

    out = app.post("/_deferred/logout", status=303)

    assert out.location.endswith("/_deferred")
    cookie = set_cookie(out)
    assert cookie.startswith(f"{COOKIE_NAME}=;") and "Max-Age=0" in cookie and "Path=/_deferred" in cookie
    assert COOKIE_NAME not in app.cookies
    app.get("/_deferred", status=403)


def test_a_logout_from_another_site_is_refused(make_app):
    app = make_app()
    login(app)
    app.post("/_deferred/logout", headers={"Sec-Fetch-Site": "cross-site"}, status=403)
    app.get("/_deferred", status=200)


@pytest.mark.parametrize(("environ", "settings", "secure"), [
    ({}, {}, False),
    ({"wsgi.url_scheme": "https"}, {}, True),  # what waitress/gunicorn set for a trusted proxy's https
    ({"HTTP_X_FORWARDED_PROTO": "https"}, {}, False),  # the header alone: the app never trusts it
    ({}, {"dashboard.secure_cookie": "true"}, True),
], ids=["http", "https", "forwarded-proto-untrusted", "forced"])
def test_the_cookie_is_secure_when_the_request_is_https_as_the_server_sees_it_or_when_told(
    make_app, environ, settings, secure
):
    app = make_app(**settings)
    response = app.post("/_deferred", {"token": TOKEN}, extra_environ={"REMOTE_ADDR": ADMIN, **environ},
                        status=303)
    assert ("; secure" in set_cookie(response).lower()) is secure
    logout = app.post("/_deferred/logout", extra_environ=environ, status=303)
    assert ("; secure" in set_cookie(logout).lower()) is secure


# --- throttling ---


@pytest.mark.parametrize("attempt", ["header", "bearer", "form"])
def test_after_n_wrong_tokens_a_client_is_throttled_even_with_the_right_token(make_app, clock, logs, attempt):
    app = make_app(**{"dashboard.max_failures_per_client": "3", "dashboard.throttle_window_seconds": "60"})

    def send(token: str) -> Any:
        if attempt == "form":
            return app.post("/_deferred", {"token": token}, expect_errors=True, **from_(ATTACKER))
        header = {TOKEN_HEADER: token} if attempt == "header" else {"Authorization": f"Bearer {token}"}
        return app.get("/_deferred/data.json", headers=header, expect_errors=True, **from_(ATTACKER))

    statuses = [send(WRONG).status_int for _ in range(3)]
    clock.now += 10
    throttled = send(TOKEN)

    assert statuses == [403, 403, 403]
    assert throttled.status_int == 429 and throttled.headers["Retry-After"] == "50"
    assert COOKIE_NAME not in app.cookies
    assert app.get("/_deferred", headers={TOKEN_HEADER: TOKEN}, **from_(OTHER)).status_int == 200
    clock.now = START + 60  # the window ends
    assert send(TOKEN).status_int in (200, 303)
    warnings = logs.at("WARNING")
    assert len(warnings) == 1 and "throttled for one client address" in warnings[0]
    lines = [f"{r.message} {vars(r)}" for r in logs.records]
    assert not [line for line in lines if WRONG in line or TOKEN in line or ATTACKER in line]


def test_throttled_answers_are_429_for_the_page_and_the_data(make_app):
    app = make_app(**{"dashboard.max_failures_per_client": "1"})
    app.get("/_deferred", headers={TOKEN_HEADER: WRONG}, status=403, **from_(ATTACKER))

    page = app.get("/_deferred", headers={TOKEN_HEADER: TOKEN}, status=429, **from_(ATTACKER))
    data = app.get("/_deferred/data.json", headers={TOKEN_HEADER: TOKEN}, status=429, **from_(ATTACKER))

    assert "Too many wrong tokens" in page.text and page.headers["Retry-After"] == "300"
    assert data.json == {"error": "throttled", "retry_after_seconds": 300}
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_wrong_tokens_from_many_addresses_throttle_everyone_but_not_logged_in_browsers(make_app, logs):
    app = make_app(**{"dashboard.max_failures": "5", "dashboard.max_failures_per_client": "100"})
    admin = TestApp(app.app)
    login(admin)

    for number in range(5):
        app.get("/_deferred", headers={TOKEN_HEADER: WRONG}, status=403, **from_(f"198.51.100.{number}"))

    app.get("/_deferred", headers={TOKEN_HEADER: TOKEN}, status=429, **from_(OTHER))
    app.post("/_deferred", {"token": TOKEN}, status=429, **from_(OTHER))
    admin.get("/_deferred/data.json", status=200, **from_(ADMIN))
    [warning] = logs.at("WARNING")
    assert "throttled for every client" in warning


def test_a_request_without_any_token_is_a_plain_403_and_counts_for_nothing(make_app):
    app = make_app(**{"dashboard.max_failures_per_client": "1"})
    for _ in range(5):
        app.get("/_deferred", status=403, **from_(ADMIN))
    assert app.get("/_deferred", headers={TOKEN_HEADER: TOKEN}, **from_(ADMIN)).status_int == 200


@pytest.mark.parametrize("empty", [
    {TOKEN_HEADER: ""}, {"Authorization": "Bearer "}, {"Authorization": "Bearer"},
    {"Authorization": "bearer  "},
], ids=["empty-header", "empty-bearer", "bare-bearer", "blank-bearer"])
def test_an_empty_token_is_a_wrong_token(make_app, empty):
    app = make_app(**{"dashboard.max_failures_per_client": "1"})
    app.get("/_deferred/data.json", headers=empty, status=403, **from_(ATTACKER))
    app.get("/_deferred/data.json", headers={TOKEN_HEADER: TOKEN}, status=429, **from_(ATTACKER))


@pytest.mark.parametrize("form", [{"token": ""}, {"token": "   "}, {}], ids=["empty", "blank", "missing"])
def test_an_empty_form_is_a_wrong_token(make_app, form):
    app = make_app()
    answer = app.post("/_deferred", form, status=403, **from_(ADMIN))
    assert "Wrong token" in answer.text and COOKIE_NAME not in app.cookies


# --- cross-site logins ---


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost:80"},
    {"Origin": "https://evil.example"},
    {"Origin": "http://localhost.evil.example"},
    {"Origin": "null"},
], ids=["cross-site", "same-site", "fetch-site-wins", "origin", "lookalike-origin", "null-origin"])
def test_a_login_from_another_site_is_refused_before_the_token_is_looked_at(make_app, logs, headers):
    app = make_app(**{"dashboard.max_failures_per_client": "1"})

    refused = login(app, headers=headers, status=403)

    assert "another site" in refused.text and COOKIE_NAME not in app.cookies
    login(app, headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost:80"})
    assert not logs.at("WARNING"), "not counted as a wrong token"


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {"Origin": "http://localhost:80"}, {},
], ids=["same-origin", "typed", "origin", "no-browser"])
def test_a_login_from_the_page_itself_or_outside_a_browser_is_taken(make_app, headers):
    app = make_app()
    login(app, headers=headers)
    assert COOKIE_NAME in app.cookies


# --- the token at start-up and in reprs ---


@pytest.mark.parametrize("token", ["a" * 32, "password12345678" * 2, "dashboard-token-1234" * 2])
def test_a_guessable_token_stops_start_up_naming_the_setting(token):
    config = Configurator(settings={"dashboard.token": token})
    config.include("pyramid_deferred")
    with pytest.raises(ConfigError) as raised:
        config.include("pyramid_deferred.dashboard")
    message = str(raised.value)
    assert "dashboard.token" in message and "too easy to guess" in message and token not in message
    assert "token_urlsafe" in message, "it says how to make a good one"


def test_the_token_is_in_no_repr(make_app):
    app = make_app()
    dashboard = get_dashboard(app.app.registry)
    shown = [repr(dashboard.settings), str(dashboard.settings), repr(dashboard.guard),
             repr(dashboard.guard.cookies), repr(vars(dashboard)), repr(DashboardSettings(token=TOKEN))]
    assert not [text for text in shown if TOKEN in text]

"""Security checks through the shop: Meta user data on the wire, production.ini's defaults, and
log lines that request-provided text cannot forge.

(Secrets in logs: ``tests/secret_guard.py`` watches the whole run; ``tests/reliability/
test_secrets_session.py`` asserts it.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from loguru import logger
from pyramid.paster import get_app
from pyramid_deferred.hook import get_hook
from pytest_httpserver import HTTPServer
from webtest import TestApp

from app.factory import build_container, make_configurator
from app.services import MetaSettings
from config.logging import FILE_FORMAT
from tests.functional.services_stub import META, answer_like_the_services, go_live
from tests.functional.shop import BROWSER, place_order
from tests.integration.services import credentials

ROOT = Path(__file__).resolve().parents[2]
HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- Meta: user data hashed per Meta's normalisation, never sent in clear ---

# (typed by the customer, normalised as Meta requires). The shop keeps what was typed (trimmed).
EMAILS = [
    ("  Jane.Doe+Shop@Example.COM ", "jane.doe+shop@example.com"),
    ("ZOFIA@przyklad.PL", "zofia@przyklad.pl"),
]
PHONES = [
    ("+48 601-234-567", "48601234567"),
    ("0048 (601) 234 567", "48601234567"),
    ("601 234 567", "48601234567"),  # national: META_DEFAULT_PHONE_COUNTRY_CODE=48 goes in front
    ("+1 (415) 555-0100", "14155550100"),
]


@pytest.fixture
def live_meta(make_app, httpserver: HTTPServer) -> TestApp:
    shop = make_app()
    base = httpserver.url_for("").rstrip("/")
    go_live(shop, base)
    shop.app.registry.container.meta_settings.override(
        providers.Object(
            MetaSettings.from_environ(credentials.meta_env(base, META_DEFAULT_PHONE_COUNTRY_CODE="48"))
        )
    )
    answer_like_the_services(httpserver)
    return shop


@pytest.mark.parametrize(("typed_phone", "phone"), PHONES)
@pytest.mark.parametrize(("typed_email", "email"), EMAILS)
def test_meta_gets_contact_details_only_as_sha256_of_metas_normalisation(
    live_meta: TestApp, httpserver: HTTPServer, typed_email, email, typed_phone, phone
):
    customer = live_meta.post_json("/api/customers", {"email": typed_email, "phone": typed_phone}).json
    live_meta.get("/products/wool-hat")  # signed in: the view carries the customer's details too
    place_order(live_meta, email=typed_email, phone=typed_phone)  # as typed at the checkout

    bodies = [request.get_data() for request, _ in httpserver.log if request.path == META]
    events = [event for body in bodies for event in json.loads(body)["data"]]
    assert [event["event_name"] for event in events] == [
        "CompleteRegistration", "ViewContent", "AddToCart", "Purchase",
    ]
    for event in events:
        user = event["user_data"]
        assert user["em"] == [sha256(email)] and user["ph"] == [sha256(phone)]
        assert user["external_id"] == [sha256(customer["customer"])]
        assert all(HEX64.fullmatch(value[0]) for value in (user["em"], user["ph"], user["external_id"]))
    digits = re.sub(r"\D", "", typed_phone)
    in_clear = {typed_email.strip(), email, typed_phone, digits, phone, digits.lstrip("0")}
    for body in bodies:  # the whole request body, byte for byte
        text = body.decode().lower()
        assert not [value for value in in_clear if value.lower() in text]


# --- production.ini: no metrics endpoint, no debug view ---


@pytest.fixture
def paste_app(tmp_path, monkeypatch) -> Iterator[Any]:
    """``config/<name>`` loaded through paste as pserve and gunicorn --paste do (``app:main``)."""
    loaded: list[Any] = []
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    for name in ("APP_METRICS_ENABLED", "APP_METRICS_PATH", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEFERRED_TASK_LOG_PATH", str(tmp_path / "deferred_task.log"))  # not logs/ here

    def load(name: str) -> TestApp:
        app = get_app(str(ROOT / "config" / name))
        loaded.append(app)
        return TestApp(app, extra_environ=BROWSER)

    yield load
    signal.signal(signal.SIGTERM, previous_sigterm)  # app.main handles SIGTERM for pserve
    for app in loaded:
        get_hook(app.registry).worker.shutdown(grace_seconds=5)
        app.registry.container.shutdown_resources()


def test_production_ini_serves_no_metrics_and_no_debug_view(paste_app):
    production = paste_app("production.ini")

    production.get("/metrics", status=404)
    production.get("/_debug_toolbar/", status=404)
    settings = production.app.registry.settings
    assert "pyramid_debugtoolbar" not in str(settings.get("pyramid.includes", ""))
    assert not any(settings.get(f"debug_{name}") for name in ("authorization", "notfound", "routematch"))
    assert production.get("/health").json == {"status": "ok"}


def test_the_same_check_sees_the_endpoint_where_it_is_on(paste_app):
    """Control: development.ini turns metrics on, and the same request finds them."""
    assert "deferred_tasks_per_request" in paste_app("development.ini").get("/metrics").text


# --- log lines cannot be forged by request-provided text ---

LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
"""Every character ``str.splitlines()`` splits on."""
FORGED = "FORGED | ERROR | admin logged in"


@pytest.fixture
def logged_lines(tmp_path) -> Iterator[tuple[TestApp, list[str]]]:
    """The shop with its real logging set-up (console and DEFERRED_TASK file, every level), and the
    lines a sink with the file format writes."""
    settings = {
        "deferred_task.log_path": str(tmp_path / "deferred_task.log"),
        "deferred_task.log_threshold": "DEBUG",
        "app.log_level": "DEBUG",
    }
    container = build_container(settings, environ={})
    router = make_configurator(settings, container).make_wsgi_app()
    shop = TestApp(router, extra_environ=BROWSER)
    lines: list[str] = []
    sink = logger.add(lines.append, level=0, format=FILE_FORMAT)
    yield shop, lines
    logger.remove(sink)
    get_hook(router.registry).worker.shutdown(grace_seconds=5)
    container.shutdown_resources()


def forged(lines: list[str]) -> list[str]:
    return [line for line in lines if len(line.rstrip("\n").splitlines()) != 1 or "\x1b" in line]


def test_request_text_reaches_no_log_line_and_every_record_stays_one_line(logged_lines, tmp_path):
    """Headers, a query, a name and a path full of line breaks, at DEBUG everywhere: the dry-runs
    and the refusals name what happened, never what the request said."""
    shop, lines = logged_lines
    evil = "".join(f"{c}{FORGED}" for c in "\n\r\x0b\x0c\x1c\x85") + "\x1b[2J"  # all latin-1: header-safe
    headers = {
        "User-Agent": "Mozilla/5.0" + evil, "Referer": "http://x/" + evil, "Accept-Language": "pl" + evil,
        "X-Request-ID": "req" + evil,
    }
    shop.set_cookie("_fbp", "fb.1.2.3" + evil.replace("\n", "").replace("\r", "").replace(";", ""))

    shop.get("/products/wool-hat", headers=headers)  # Meta and Matomo dry-runs: logged by name and size
    shop.get("/search", params={"q": "hat" + LINE_BREAKS + FORGED}, headers=headers)
    name = "Ewa\n\x85" + FORGED
    shop.post_json("/api/customers", {"email": "ewa@example.com", "name": name}, headers=headers)
    shop.get("/products/no-such" + "%0A" + FORGED.replace(" ", "%20"), headers=headers, status=404)

    task_file = (tmp_path / "deferred_task.log").read_text().splitlines(keepends=True)  # the real sink
    assert any("meta.view_content dry-run" in line for line in lines)  # the dry-runs were logged
    assert not [line for line in lines if "FORGED" in line], "no request text in any line"
    assert task_file and not forged(task_file)
    assert not forged(lines), forged(lines)[:3]
    assert not any(line.startswith("FORGED") for line in "".join(lines).splitlines())


def test_a_server_logging_a_decoded_path_cannot_forge_a_line(logged_lines):
    """waitress logs ``"Client disconnected while serving %s" % task.request.path`` (and "Exception
    while serving"), with the path percent-decoded: ``GET /x%0AFORGED`` puts a newline in it. Its
    stdlib records are routed into loguru; what the sinks write stays one line per record."""
    _, lines = logged_lines

    logging.getLogger("waitress").info("Client disconnected while serving %s", "/x\n" + FORGED)
    logging.getLogger("gunicorn.error").error("Error handling request %s", "/x\r\n" + FORGED)

    written = [line for line in lines if "serving" in line or "handling request" in line]
    assert len(written) == 2 and not forged(written), written


def test_a_cookie_that_is_not_utf8_gets_a_new_session_not_a_500(make_app):
    shop = make_app()
    # WSGI gives the header's bytes as latin-1; WebOb decodes a quoted value as UTF-8 and raises.
    not_utf8 = {"HTTP_COOKIE": '_fbp="fb.1.\x85x"; shop_session=abc'}
    response = shop.get("/products/wool-hat", extra_environ=not_utf8)
    assert response.status_int == 200
    assert any(c.startswith("shop_session=") for c in response.headers.getall("Set-Cookie"))


def test_a_request_id_with_control_characters_is_replaced_not_logged(logged_lines):
    shop, lines = logged_lines
    response = shop.get("/", headers={"X-Request-ID": "abc\r\n" + FORGED})
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", response.headers["X-Request-ID"])  # a new one of ours
    assert not [line for line in lines if FORGED in line]

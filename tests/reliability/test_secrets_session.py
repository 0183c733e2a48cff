"""No access token, API key, signature, ``token_auth`` or Redis password, and no test customer's
e-mail, phone number, name or IP address, in any log line of the run.

``tests/conftest.py`` collects this module last, so the totals below cover the whole suite:
every loguru and stdlib record of every test (the ``tests/secret_guard.py`` watch), and for
secrets every file the suite wrote under pytest's temporary directory (the real servers' output
and log files). The first test sends every credential and a customer's details itself, so the
checks are never vacuous, even when this module runs alone.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from loguru import logger
from pyramid_deferred.hook import get_hook
from pytest_httpserver import HTTPServer
from webtest import TestApp
from werkzeug import Request, Response

from app.factory import build_container, make_configurator
from app.services.meta import API_VERSION
from tests.functional.shop import BROWSER, CLIENT_IP, EMAIL, NAME, PHONE, place_order
from tests.integration.services import credentials
from tests.integration.services.raw_servers import free_port
from tests.integration.services.redis_server import running_redis
from tests.personal_data import personal_data_in
from tests.secret_guard import GUARD, WIRE_SECRETS, SecretGuard


def echo_with_500(request: Request) -> Response:
    """The worst answer: a 500 quoting our Authorization header and body back."""
    quoted = f"auth={request.headers.get('Authorization')} body={request.get_data(as_text=True)}"
    return Response(quoted, status=500)


@pytest.fixture
def live_shop(httpserver: HTTPServer, tmp_path: Path) -> Iterator[TestApp]:
    """The shop with every integration live against an echoing stub, breakers shared in Redis."""
    base = httpserver.url_for("").rstrip("/")
    port = free_port()
    environ = {
        **credentials.meta_env(base),
        **credentials.advisable_ai_env(base),
        **credentials.manago_env(base),
        **credentials.matomo_env(base),
        "CIRCUIT_BREAKER_REDIS_URL": f"redis://:{credentials.REDIS_PASSWORD}@127.0.0.1:{port}/0",
    }
    settings = {"deferred_task.log_path": str(tmp_path / "deferred_task.log"), "app.log_level": "DEBUG"}
    with running_redis(port, tmp_path, password=credentials.REDIS_PASSWORD):
        container = build_container(settings, environ)  # real logging: console and file sinks
        router = make_configurator(settings, container).make_wsgi_app()
        try:
            yield TestApp(router, extra_environ=BROWSER)
        finally:
            get_hook(router.registry).worker.shutdown(grace_seconds=5)
            container.shutdown_resources()


def test_every_credential_travels_in_a_request_and_reaches_no_log_line(
    live_shop: TestApp, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("", method="POST").respond_with_handler(echo_with_500)  # every path
    wire_before = GUARD.on_the_wire.copy()
    records_before, personal_before = GUARD.records_seen, len(GUARD.personal_data_leaks)

    live_shop.post_json("/api/customers", {"email": EMAIL, "phone": PHONE, "name": NAME}, status=201)
    referer = f"https://search.example/?q={NAME}&email={EMAIL}"
    live_shop.get("/products/wool-hat", headers={"Referer": referer, "Accept-Language": "pl-PL"})
    place_order(live_shop)

    bodies = [json.loads(request.get_data()) for request, _ in httpserver.log]
    assert {request.path for request, _ in httpserver.log} == {
        f"/{API_VERSION}/{credentials.META_PIXEL_ID}/events", "/v1/signals", "/api/contact/upsert",
        "/matomo.php",
    }
    assert any(body.get("access_token") == credentials.META_ACCESS_TOKEN for body in bodies)
    sent_now = GUARD.on_the_wire - wire_before
    assert set(WIRE_SECRETS) <= set(sent_now), f"not sent: {set(WIRE_SECRETS) - set(sent_now)}"
    manago = [body for body in bodies if "contact" in body]
    assert manago and manago[0]["contact"]["email"] == EMAIL.lower()  # the e-mail went out, in clear
    meta = [body["data"][0] for body in bodies if "data" in body]
    assert any(event["user_data"]["client_ip_address"] == CLIENT_IP for event in meta)
    assert GUARD.records_seen - records_before > 20, "the run logged (every failure among them)"
    assert not GUARD.leaks and len(GUARD.personal_data_leaks) == personal_before


def test_no_secret_reached_a_log_record_anywhere_in_the_suite(record_property) -> None:
    record_property("secrets", f"{GUARD.records_seen} log records checked; requests carrying each "
                    f"credential: {sorted(GUARD.on_the_wire.values())}; leaks: {len(GUARD.leaks)}")
    assert GUARD.records_seen > 0
    assert set(WIRE_SECRETS) <= set(GUARD.on_the_wire)
    assert not GUARD.leaks, "\n".join(f"{leak.where}: {leak.secrets}" for leak in GUARD.leaks)


def test_no_personal_data_reached_a_log_record_anywhere_in_the_suite(record_property) -> None:
    kinds = sorted({found.split(":")[0] for leak in GUARD.personal_data_leaks for found in leak.secrets})
    record_property("secrets", f"{GUARD.records_seen} log records scanned for personal data (e-mails, "
                    f"phones, names, IPs); records holding some: {len(GUARD.personal_data_leaks)} {kinds}")
    assert GUARD.records_seen > 0
    assert not GUARD.personal_data_leaks, "\n".join(
        f"{leak.where}: {leak.secrets}" for leak in GUARD.personal_data_leaks[:20]
    )


@pytest.mark.parametrize(("text", "kind"), [
    ("buyer Jane.Doe@Example.com", "e-mail: Jane.Doe@Example.com"),
    ("contact zofia@przyklad.pl", "e-mail: zofia@przyklad.pl"),
    ("ph +48 601-234-567", "phone: 601-234-567"),
    ("ph 48601234567", "phone: 601234567"),
    ("ph (650) 555-1212", "phone: 650) 555-1212"),
    ("name JANE DOE", "name: JANE DOE"),
    ("cip=203.0.113.7&x", "IP: 203.0.113.7"),
    ("for 198.51.100.23", "IP: 198.51.100.23"),
], ids=["email", "email-pl", "phone", "phone-e164", "phone-us", "name", "ip", "ip-proxy"])
def test_the_personal_data_patterns_see_each_kind_however_spelt(text, kind):
    assert personal_data_in(text) == [kind]


@pytest.mark.parametrize("text", [
    "Deferred tasks done in 0.001s", "request id 5f84c7a3", "127.0.0.1:6543", "v1.1800000000.00ff",
    "meta.purchase dry-run (no credentials configured), not sent: event o1, 812 bytes", "Ewan", "janedoe",
    "redis://:pa55word@redis.internal:6379", "1203.0.113.70",
])
def test_the_personal_data_patterns_leave_ordinary_lines_alone(text):
    assert personal_data_in(text) == []


PASSWORD_LISTS = frozenset({"zxcvbn"})
"""Packages whose data lists common passwords, ``hunter2`` (a test secret) among them; the wheel tests
install them in their virtualenvs. Their files are what pip wrote, not the suite."""


def is_password_list(path: Path) -> bool:
    return any(folder == "site-packages" and package in PASSWORD_LISTS
               for folder, package in itertools.pairwise(path.parts))


def test_no_secret_in_any_file_the_suite_wrote(
    tmp_path_factory: pytest.TempPathFactory, record_property
) -> None:
    """Server output (stdout/stderr), DEFERRED_TASK log files, probe markers: everything under the
    run's temporary directory, including what the subprocess servers wrote."""
    secrets = [secret.encode() for secret in GUARD.secrets]
    scanned = 0
    leaks = []
    for path in tmp_path_factory.getbasetemp().rglob("*"):
        if not path.is_file() or path.is_symlink() or is_password_list(path):
            continue
        data = path.read_bytes()
        scanned += 1
        leaks += [f"{path}: {secret.decode()}" for secret in secrets if secret in data]
    record_property("secrets", f"{scanned} files under the run's temporary directory scanned")
    assert scanned > 0
    assert not leaks, "\n".join(leaks)


def test_the_guard_sees_loguru_stdlib_exceptions_and_the_wire_and_survives_a_reset() -> None:
    """Negative control: a canary secret, and a canary customer, logged every way the suite logs
    are caught (the canary customer's address is at a domain the real patterns do not cover, so
    that the session's own guard does not count it)."""
    canary = "canary-9f2e41"
    customer = "canary@customer.invalid"
    guard = SecretGuard(secrets=(canary,), personal_data={"e-mail": re.compile(re.escape(customer))})
    guard.install()
    try:
        logger.remove()  # what an app's logging set-up does: the guard's sink comes back
        logger.info("a message with {}", canary)
        logging.getLogger("waitress").warning("stdlib %s", canary)
        logger.info("a buyer: {}", customer)
        logging.getLogger("app").info("buyer %s", customer)
        logger.bind(buyer=customer).info("a line whose extra holds it")
        try:
            raise ValueError(f"exception text {canary}")
        except ValueError:
            logger.exception("failed")
            logging.getLogger("pyramid").exception("failed")
        with httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(204))) as client:
            client.post("http://127.0.0.1:9/", headers={"Authorization": f"Bearer {canary}"})
    finally:
        guard.uninstall()

    def seen(source: str, text: str) -> bool:
        return any(leak.where.startswith(source) and text in leak.text for leak in guard.leaks)

    assert seen("loguru", "a message with")
    assert seen("logging waitress", "stdlib")
    assert seen("loguru", "ValueError: exception text")  # the message says only "failed"
    assert seen("logging pyramid", "ValueError: exception text")
    assert guard.on_the_wire[canary] == 1
    personal = guard.personal_data_leaks
    assert any(leak.where.startswith("loguru") and "a buyer" in leak.text for leak in personal)
    assert any(leak.where.startswith("logging app") for leak in personal)
    assert any("a line whose extra holds it" in leak.text for leak in personal), "the extra is scanned"

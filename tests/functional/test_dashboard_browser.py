"""The live page in a real browser: Debian's headless Chromium, driven by Selenium through Debian's
chromedriver, against the shop served by waitress on 127.0.0.1.

The page is opened first; then a visitor uses the shop over HTTP (a product page, *Add to cart*, a
checkout) and the new rows must appear in that same page, without a reload: a marker set on
``window`` before the requests is still there once they show. A task named like markup is shown as
text. ``DASHBOARD_SCREENSHOT_TO_DOCS=1`` writes the screenshot the docs show (docs/images/).

With Redis, the shop under gunicorn with three worker processes: requests spread over them, and
the page, whichever worker answers its polls, shows runs of at least two of those pids, a forged
entry in Redis as text, and says it ignored an invalid one.

With a token, a page on another site (``evil.example``, which the browser resolves to 127.0.0.1:
nothing leaves the machine) that posts the right token to the login form is refused, while the
page's own form logs in and its *Log out* button logs out.

No test here is ever skipped: without Chromium or its driver they fail with the command that installs
them (``make browser-check``). Selenium Manager is never used (it would download a driver): the
driver and the browser are given by path."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.cookiejar
import http.server
import json
import os
import secrets
import struct
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyramid_deferred.dashboard.redis_store import RUN_FIELD, RUNS_KEY
from redis import Redis
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from app.shop.orders import ACCEPTED_CARD
from tests.functional.dashboard_app import EVIL_TASK, LOG_PATH_ENV
from tests.functional.shop import EMAIL, PHONE, USER_AGENT
from tests.integration.services.credentials import REDIS_PASSWORD
from tests.integration.services.redis_server import running_redis
from tests.servers.servers import HOST, WORKTREE, free_port, poll, stop

pytestmark = pytest.mark.servers

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver"
SCRUBBED = ("APP_", "DEFERRED_TASK_", "META_", "ADVISABLE_AI_", "MANAGO_", "MATOMO_", "CIRCUIT_BREAKER_",
            "PROMETHEUS_", "OTEL_")
WIDTH, HEIGHT = 1280, 900
PAGE_TIMEOUT = 30.0
ROWS_TIMEOUT = 15.0
"""The page polls every second: the rows show within a poll or two of the runs."""
SCREENSHOT_TO_DOCS_ENV = "DASHBOARD_SCREENSHOT_TO_DOCS"
DOCS_SCREENSHOT = WORKTREE / "docs" / "images" / "dashboard.png"
MARKER = "__dashboard_test_marker"
TOKEN = "mHNU0enSQKEKsoBBQOHkmzNG8hc05X6y_BwDGr9vGus"
EVIL_HOST = "evil.example"
ATTACK_PAGE = """<!doctype html><html><body><h1>Cute cats</h1>
<form id="guess" method="post" action="{target}"><input name="token" value="{token}"></form>
<script>document.getElementById("guess").submit();</script></body></html>"""
EVIL_PATH = "/evil/%3Cscript%3Ealert(2)%3C%2Fscript%3E"


def installed() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `{INSTALL}` (as root), or `make browser-check`")


class Shop:
    """A visitor over HTTP, with a cookie jar: the session that holds the cart."""

    def __init__(self, port: int) -> None:
        self.port = port
        cookies = urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        self.opener = urllib.request.build_opener(cookies)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://{HOST}:{self.port}{path}", data=data, method=method,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
        )
        with self.opener.open(request, timeout=10) as answer:  # 127.0.0.1 only
            return int(answer.status), answer.read()

    def runs(self) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = json.loads(self.request("GET", "/_deferred/data.json")[1])["runs"]
        return runs


WAITRESS = [sys.executable, "-m", "waitress", "--threads=4", "--call",
            "tests.functional.dashboard_app:make_app"]
GUNICORN_WORKERS = 3
GUNICORN = [sys.executable, "-m", "gunicorn", "--config", str(WORKTREE / "gunicorn.conf.py"),
            "--workers", str(GUNICORN_WORKERS), "--worker-class", "sync", "--threads", "1",
            "tests.functional.dashboard_app:make_app()"]
"""Sync workers: a worker answers one request at a time, so requests sent at once spread."""


def serve_shop(tmp_path_factory: pytest.TempPathFactory, command: list[str] = WAITRESS,
               **environ: str) -> Iterator[tuple[int, int]]:
    """The shop on a free port: its port and its server's pid (gunicorn's master), stopped after."""
    workdir = tmp_path_factory.mktemp("shop")
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env.update(PYTHONPATH=str(WORKTREE), PYTHONUNBUFFERED="1", **environ)
    env[LOG_PATH_ENV] = str(workdir / "deferred_task.log")
    port = free_port()
    listen = [f"--listen={HOST}:{port}"] if command is WAITRESS else ["--bind", f"{HOST}:{port}"]
    with (workdir / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [*command[:3], *listen, *command[3:]],
            cwd=WORKTREE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        def ready() -> bool:
            try:
                return Shop(port).request("GET", "/health")[0] == 200
            except OSError:
                return False

        if not poll(ready, timeout=30, interval=0.1):
            pytest.fail("the shop did not start:\n" + (workdir / "server.log").read_text()[-3000:])
        yield port, process.pid
    finally:
        stop(process)  # the process group: gunicorn's workers too


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The shop as `make serve` runs it: the live page open, without a token."""
    for port, _ in serve_shop(tmp_path_factory):
        yield port


@pytest.fixture(scope="module")
def guarded_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The shop with the live page behind a token."""
    for port, _ in serve_shop(tmp_path_factory, APP_DASHBOARD_TOKEN=TOKEN):
        yield port


@pytest.fixture(scope="module")
def redis_for_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """A redis-server of this test's own (with a password), and a client to look and forge with."""
    port = free_port()
    with running_redis(port, tmp_path_factory.mktemp("redis"), password=REDIS_PASSWORD):
        client = Redis(host=HOST, port=port, password=REDIS_PASSWORD, socket_timeout=5)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture(scope="module")
def workers_shop(
    tmp_path_factory: pytest.TempPathFactory, redis_for_workers: Redis
) -> Iterator[tuple[int, int]]:
    """The shop under gunicorn, three sync worker processes, the page shared through Redis."""
    port = redis_for_workers.connection_pool.connection_kwargs["port"]
    yield from serve_shop(tmp_path_factory, GUNICORN,
                          APP_DASHBOARD_REDIS_URL=f"redis://:{REDIS_PASSWORD}@{HOST}:{port}/0")


class AttackerPage(http.server.BaseHTTPRequestHandler):
    """A page on another site whose form posts the (right) token to the live page's login."""

    target = ""

    def do_GET(self) -> None:
        body = ATTACK_PAGE.format(target=self.target, token=TOKEN).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


@pytest.fixture
def attacker(guarded_shop: int) -> Iterator[str]:
    """``http://evil.example:<port>/``, served here: the browser maps evil.example to 127.0.0.1."""
    handler = type("Attacker", (AttackerPage,), {"target": f"http://{HOST}:{guarded_shop}/_deferred"})
    server = http.server.ThreadingHTTPServer((HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://{EVIL_HOST}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    installed()
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}",
                 f"--host-resolver-rules=MAP {EVIL_HOST} {HOST}",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # The driver by path: Selenium Manager (which downloads drivers) is skipped.
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(profile.parent / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(PAGE_TIMEOUT)
        driver.set_script_timeout(PAGE_TIMEOUT)
        # --window-size is the window's; the viewport (what a screenshot shows) is what it leaves.
        inner_width, inner_height = driver.execute_script("return [innerWidth, innerHeight];")
        driver.set_window_size(2 * WIDTH - inner_width, 2 * HEIGHT - inner_height)
        yield driver
    finally:
        try:
            driver.quit()
        finally:  # if quit() failed, chromedriver is ended by its pid
            process = service.process
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait(timeout=10)


def open_live_page(driver: webdriver.Chrome, port: int) -> str:
    """The page, polling; a fresh marker on ``window``, which a reload would lose."""
    driver.get(f"http://{HOST}:{port}/_deferred")
    live = driver.find_element(By.ID, "live")
    wait(driver, lambda: live.text.startswith("live · pid "), "the page never fetched its data")
    marker = secrets.token_hex(8)
    driver.execute_script(f"window.{MARKER} = arguments[0];", marker)
    return marker


def wait(driver: webdriver.Chrome, condition: Callable[[], Any], message: str) -> Any:
    try:
        return WebDriverWait(driver, ROWS_TIMEOUT, poll_frequency=0.1).until(lambda _: condition())
    except TimeoutException:
        shown = driver.find_element(By.TAG_NAME, "body").text[:3000]
        pytest.fail(f"{message} within {ROWS_TIMEOUT}s; the page shows:\n{shown}")


ROWS_JS = """
return Array.from(document.querySelectorAll("#runs .run"), (row) => ({
  id: row.dataset.requestId,
  line: row.querySelector(".line").textContent,
  meta: row.querySelector(".meta").textContent,
  tasks: Array.from(row.querySelectorAll(".task"), (task) => ({
    text: task.textContent, outcome: task.dataset.outcome, classes: Array.from(task.classList),
    children: task.children.length,
  })),
}));
"""
"""The rows as the page shows them now, read in one call: the page rebuilds them on every poll."""


def rows(driver: webdriver.Chrome, request: str | None = None) -> list[dict[str, Any]]:
    """The page's rows (newest first), for that request line when given."""
    shown: list[dict[str, Any]] = driver.execute_script(ROWS_JS)
    return [row for row in shown if request is None or row["line"] == request]


def texts(driver: webdriver.Chrome, selector: str) -> list[str]:
    """The text of each element matching ``selector``, read in one call (see ``ROWS_JS``)."""
    found: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), (node) => node.textContent);", selector
    )
    return found


def new_rows(driver: webdriver.Chrome, request: str, seen: set[str]) -> list[dict[str, Any]]:
    """Rows for that request line that were not on the page before (``seen``: their request ids)."""
    return [row for row in rows(driver, request) if row["id"] not in seen]


def still_the_same_page(driver: webdriver.Chrome, marker: str) -> None:
    assert driver.execute_script(f"return window.{MARKER};") == marker, "the page was reloaded"
    assert driver.execute_script("return performance.getEntriesByType('navigation').length;") == 1


def no_alert(driver: webdriver.Chrome) -> None:
    with contextlib.suppress(NoAlertPresentException):
        text = driver.switch_to.alert.text
        pytest.fail(f"a script from the data ran: alert {text!r}")


def test_the_shop_s_requests_appear_in_the_open_page_without_a_reload(shop, browser):
    visitor = Shop(shop)
    marker = open_live_page(browser, shop)
    seen = {row["id"] for row in rows(browser)}

    assert visitor.request("GET", "/products/wool-hat")[0] == 200
    assert visitor.request("POST", "/api/cart/items", {"product_id": "wool-hat", "quantity": 1})[0] == 201

    wait(browser, lambda: new_rows(browser, "POST /api/cart/items", seen), "the cart's row never showed")
    wait(browser, lambda: new_rows(browser, "GET /products/wool-hat", seen), "the product's row never showed")
    still_the_same_page(browser, marker)
    [row] = new_rows(browser, "POST /api/cart/items", seen)
    assert "status 201" in row["meta"] and "via " in row["meta"], row
    tasks = row["tasks"]
    assert tasks and {task["outcome"] for task in tasks} <= {"executed", "skipped"}, tasks
    assert any("executed" in task["classes"] and task["text"] for task in tasks), tasks
    assert texts(browser, "#runs .axis span")[0] == "0 (response left)"
    assert "Circuit breakers" in texts(browser, "#panels h2")
    no_alert(browser)


def test_a_task_named_like_markup_is_shown_as_text(shop, browser):
    marker = open_live_page(browser, shop)
    seen = {row["id"] for row in rows(browser)}

    assert Shop(shop).request("GET", EVIL_PATH)[0] == 200

    line = "GET /evil/<script>alert(2)</script>"
    wait(browser, lambda: new_rows(browser, line, seen), "the markup request's row never showed")
    still_the_same_page(browser, marker)
    no_alert(browser)
    [row] = new_rows(browser, line, seen)
    [task] = row["tasks"]
    assert task["text"] == EVIL_TASK and task["outcome"] == "executed", "the name is the task block's text"
    assert task["children"] == 0, "no element inside it"
    assert browser.find_elements(By.TAG_NAME, "img") == [], "no element was made from data"
    scripts = [script.get_attribute("src") for script in browser.find_elements(By.TAG_NAME, "script")]
    assert scripts == [f"http://{HOST}:{shop}/_deferred/assets/dashboard.js"]
    assert EVIL_TASK in texts(browser, "#tasks td:first-child"), "and as text in the table by task name"


def test_a_screenshot_of_the_live_page(shop, browser, tmp_path):
    visitor = Shop(shop)
    marker = open_live_page(browser, shop)

    assert visitor.request("GET", "/products/wool-hat")[0] == 200
    assert visitor.request("POST", "/api/cart/items", {"product_id": "wool-hat", "quantity": 2})[0] == 201
    order = {"email": EMAIL, "phone": PHONE, "card": ACCEPTED_CARD}
    assert visitor.request("POST", "/api/checkout", order)[0] == 200

    wait(browser, lambda: texts(browser, "#runs .line")[:1] == ["POST /api/checkout"],
         "the checkout's row never showed (first: the newest)")
    still_the_same_page(browser, marker)
    browser.execute_script("window.scrollTo(0, 0);")
    image = browser.get_screenshot_as_png()

    assert image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 20_000
    width, height = struct.unpack(">II", image[16:24])
    assert (width, height) == (WIDTH, HEIGHT)
    target = DOCS_SCREENSHOT if os.environ.get(SCREENSHOT_TO_DOCS_ENV) == "1" else tmp_path / "dashboard.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(image)


def test_a_login_posted_from_another_site_is_refused_even_with_the_right_token(
    guarded_shop, browser, attacker
):
    browser.delete_all_cookies()
    browser.get(attacker)

    wait(browser, lambda: "Deferred tasks" in browser.find_element(By.TAG_NAME, "h1").text,
         "the attacker's form never reached the live page")
    assert browser.current_url == f"http://{HOST}:{guarded_shop}/_deferred"
    assert "A login from another site is refused" in browser.find_element(By.TAG_NAME, "body").text
    assert not [c for c in browser.get_cookies() if c["name"] == "deferred_dashboard"]
    browser.get(f"http://{HOST}:{guarded_shop}/_deferred")
    assert browser.find_elements(By.NAME, "token"), "still the login form: no login happened"


def test_the_page_s_own_form_logs_in_and_its_button_logs_out(guarded_shop, browser):
    browser.delete_all_cookies()
    browser.get(f"http://{HOST}:{guarded_shop}/_deferred")
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button").click()

    live = wait(browser, lambda: browser.find_elements(By.ID, "live"), "the form did not log in")[0]
    wait(browser, lambda: live.text.startswith("live · pid "), "the page never fetched its data")
    [cookie] = [c for c in browser.get_cookies() if c["name"] == "deferred_dashboard"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/_deferred"
    assert TOKEN not in cookie["value"]

    browser.find_element(By.CSS_SELECTOR, "form.logout button").click()

    wait(browser, lambda: browser.find_elements(By.NAME, "token"), "the logout did not end the login")
    assert not [c for c in browser.get_cookies() if c["name"] == "deferred_dashboard"]


def test_an_open_page_whose_login_ends_shows_the_form_again(guarded_shop, browser):
    browser.delete_all_cookies()
    browser.get(f"http://{HOST}:{guarded_shop}/_deferred")
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    wait(browser, lambda: browser.find_elements(By.ID, "live"), "the form did not log in")

    browser.delete_cookie("deferred_dashboard")  # as when it expires: the next poll gets a 403

    wait(browser, lambda: browser.find_elements(By.NAME, "token"), "the page never showed the form again")


# --- every worker, through Redis ---

BURST = 2 * GUNICORN_WORKERS
MAX_BURSTS = 30


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (gunicorn's workers), from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its last ")"
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.add(int(stat.parent.name))
    return found


def two_pids_in_runs(port: int) -> set[int] | None:
    """The pids of the shared runs, once there are at least two."""
    found = {int(run["pid"]) for run in Shop(port).runs()}
    return found if len(found) >= 2 else None


def spread_requests(port: int) -> set[int]:
    """Bursts of requests sent at once (each sync worker takes one at a time) until the runs of at
    least two workers are in the shared data; at most ``MAX_BURSTS`` bursts."""
    with concurrent.futures.ThreadPoolExecutor(BURST) as pool:
        for _ in range(MAX_BURSTS):
            answers = pool.map(lambda _: Shop(port).request("GET", "/products/wool-hat")[0], range(BURST))
            statuses = list(answers)
            assert statuses == [200] * BURST
            seen = poll(lambda: two_pids_in_runs(port), timeout=3, interval=0.2)
            if seen:
                return seen
    pytest.fail(f"the runs of {MAX_BURSTS * BURST} requests came from fewer than two workers")


def shown_pids(driver: webdriver.Chrome) -> set[int]:
    return {int(row["pid"]) for row in driver.execute_script(
        "return Array.from(document.querySelectorAll('#runs .run'), (row) => ({pid: row.dataset.pid}));")}


def test_with_redis_the_page_shows_the_runs_of_every_gunicorn_worker(workers_shop, browser):
    port, master = workers_shop
    marker = open_live_page(browser, port)
    workers = children(master)
    assert len(workers) == GUNICORN_WORKERS, f"gunicorn's workers: {workers}"

    published = spread_requests(port)

    assert published <= workers, "each run's pid is one of gunicorn's workers"
    wait(browser, lambda: len(shown_pids(browser)) >= 2, "runs of two workers never showed")
    still_the_same_page(browser, marker)
    assert shown_pids(browser) <= workers
    assert " · all workers" in browser.find_element(By.ID, "live").text
    chips = {int(pid) for pid in browser.execute_script(
        "return Array.from(document.querySelectorAll('#workers .worker'), (chip) => chip.dataset.pid);")}
    assert len(chips) >= 2 and chips <= workers
    metas = [row["meta"] for row in rows(browser, "GET /products/wool-hat")]
    assert metas and all(f"pid {pid}" in " ".join(metas) for pid in shown_pids(browser))


def test_a_forged_entry_in_redis_is_shown_as_text_and_an_invalid_one_is_said_ignored(
    workers_shop, redis_for_workers, browser
):
    port, _ = workers_shop
    assert Shop(port).request("GET", "/products/wool-hat")[0] == 200
    entries = poll(lambda: redis_for_workers.xrevrange(RUNS_KEY, count=1), timeout=10)
    assert entries, "no run reached Redis"
    run = json.loads(entries[0][1][RUN_FIELD])
    line = "GET /forged/<script>alert(3)</script>"
    run.update(request=line, request_id="forged-in-redis", tasks=[{**run["tasks"][0], "name": EVIL_TASK}])
    redis_for_workers.xadd(RUNS_KEY, {RUN_FIELD: json.dumps(run).encode()})
    redis_for_workers.xadd(RUNS_KEY, {RUN_FIELD: b'{"pid": "<img src=x onerror=alert(4)>"}'})

    marker = open_live_page(browser, port)
    wait(browser, lambda: rows(browser, line), "the forged row never showed")

    still_the_same_page(browser, marker)
    no_alert(browser)
    [row] = rows(browser, line)
    assert [task["text"] for task in row["tasks"]] == [EVIL_TASK] and row["tasks"][0]["children"] == 0
    assert browser.find_elements(By.TAG_NAME, "img") == [], "no element was made from Redis's data"
    wait(browser, lambda: "1 entries in Redis were not valid and were ignored"
         in browser.find_element(By.ID, "partial").text, "the ignored entry was not said")

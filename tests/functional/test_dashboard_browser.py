"""The live page in a real browser: headless Chromium against the shop served by waitress on
127.0.0.1. A visitor adds to the cart; the page shows that request's tasks, which ran after the
response, and shows a task named like markup as text. No test here is ever skipped: without
Chromium they fail with the command that installs it (``make browser-check``)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.functional.dashboard_app import EVIL_TASK, LOG_PATH_ENV
from tests.functional.shop import USER_AGENT
from tests.servers.servers import HOST, WORKTREE, free_port, poll, stop

pytestmark = pytest.mark.servers

CHROMIUM = "chromium"
INSTALL = "apt-get install -y chromium"
SCRUBBED = ("APP_", "DEFERRED_TASK_", "META_", "ADVISABLE_AI_", "MANAGO_", "MATOMO_", "CIRCUIT_BREAKER_",
            "PROMETHEUS_", "OTEL_")
BROWSER_TIMEOUT = 90.0
SCREENSHOT_ENV = "DASHBOARD_SCREENSHOT"
"""Where to keep the screenshot (for a person to look at); a temporary file otherwise."""


def chromium() -> str:
    path = shutil.which(CHROMIUM)
    if path is None:
        pytest.fail(f"Chromium is not installed: run `{INSTALL}` (as root), or `make browser-check`")
    return path


def run_browser(args: list[str], profile: Path) -> str:
    """Headless Chromium in its own process group, stopped by its pid if it overruns."""
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", "--virtual-time-budget=4000", *args,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        out, _ = process.communicate(timeout=BROWSER_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"Chromium did not finish within {BROWSER_TIMEOUT}s")
    finally:
        with contextlib.suppress(ProcessLookupError):  # helpers it may have left behind
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, f"Chromium exited with {process.returncode}"
    return out.decode("utf-8", "replace")


def http(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}", data=data, method=method,
        headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # 127.0.0.1 only
        return answer.status, answer.read()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    workdir = tmp_path_factory.mktemp("shop")
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env.update(PYTHONPATH=str(WORKTREE), PYTHONUNBUFFERED="1")
    env[LOG_PATH_ENV] = str(workdir / "deferred_task.log")
    port = free_port()
    with (workdir / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "waitress", f"--listen={HOST}:{port}", "--threads=4",
             "--call", "tests.functional.dashboard_app:make_app"],
            cwd=WORKTREE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        def ready() -> bool:
            try:
                return http(port, "GET", "/health")[0] == 200
            except OSError:
                return False

        if not poll(ready, timeout=30, interval=0.1):
            pytest.fail("the shop did not start:\n" + (workdir / "server.log").read_text()[-3000:])
        yield port
    finally:
        stop(process)


@pytest.fixture(scope="module")
def visited(shop: int) -> int:
    """A visitor's requests: a product page, "Add to cart", and a path and task name like markup."""
    assert http(shop, "GET", "/products/wool-hat")[0] == 200
    assert http(shop, "POST", "/api/cart/items", {"product_id": "wool-hat", "quantity": 1})[0] == 201
    assert http(shop, "GET", "/evil/%3Cscript%3Ealert(2)%3C%2Fscript%3E")[0] == 200

    def recorded() -> bool:
        runs = json.loads(http(shop, "GET", "/_deferred/data.json")[1])["runs"]
        return any(run["request"] == "POST /api/cart/items" for run in runs) and len(runs) >= 3

    assert poll(recorded, timeout=10, interval=0.1), "the dashboard never saw the requests"
    return shop


class Elements(HTMLParser):
    """Tags and their text, from Chromium's dump of the DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_the_live_page_shows_the_cart_request_s_tasks_after_its_response(visited, tmp_path):
    dom = run_browser(["--dump-dom", f"http://{HOST}:{visited}/_deferred"], tmp_path / "profile")

    assert "POST /api/cart/items" in dom, dom[:2000]
    row = dom[dom.index("POST /api/cart/items"):]
    row = row[: row.index('<div class="run"') if '<div class="run"' in row else len(row)]
    assert re.search(r'class="task executed[^"]*"[^>]*data-outcome="executed"', row), row[:2000]
    assert "status 201" in row and "via " in row
    assert "0 (response left)" in dom
    assert re.search(r"live · pid \d+", dom)
    assert "Circuit breakers" in dom


def test_markup_in_task_names_and_paths_is_shown_as_text(visited, tmp_path):
    dom = run_browser(["--dump-dom", f"http://{HOST}:{visited}/_deferred"], tmp_path / "profile")

    parser = Elements()
    parser.feed(dom)
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom, "the task name is text"
    assert "GET /evil/&lt;script&gt;alert(2)&lt;/script&gt;" in dom, "the path is text"
    assert not [attrs for tag, attrs in parser.tags if tag == "img"], "no element was made from data"
    scripts = [attrs["src"] for tag, attrs in parser.tags if tag == "script"]
    assert scripts == ["/_deferred/assets/dashboard.js"]
    assert EVIL_TASK not in dom


def test_a_screenshot_of_the_live_page(visited, tmp_path):
    target = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "dashboard.png")
    run_browser([f"--screenshot={target}", "--window-size=1280,1000", "--hide-scrollbars",
                 f"http://{HOST}:{visited}/_deferred"], tmp_path / "profile")

    image = target.read_bytes()
    assert image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 20_000

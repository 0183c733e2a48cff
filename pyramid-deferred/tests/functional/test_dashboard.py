"""``config.include("pyramid_deferred.dashboard")`` in a plain Pyramid app: its JSON, its bounds, its
panels, its escaping and its token rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from webtest import TestApp

from pyramid_deferred import PRIORITY_CRITICAL, PRIORITY_LOW
from pyramid_deferred.dashboard import dashboard_url
from pyramid_deferred.dashboard.access import COOKIE_NAME, TOKEN_HEADER
from pyramid_deferred.dashboard.recorder import cost_flag, percentile
from pyramid_deferred.hook import get_hook
from pyramid_deferred.values import ConfigError

TOKEN = "GsDLMjeR2BXhtlY8YF_7yhr1VGOmBgUpDwYndV7hyds"
EVIL = "<img src=x onerror=alert(1)>"
OPEN = {"dashboard.require_token": "false"}


def boom() -> None:
    raise KeyError("secret detail")


def shop_view(request: Request) -> Response:
    runner = request.deferred_task
    runner.defer(lambda: time.sleep(0.01), max_cost_seconds=0.5, priority=PRIORITY_CRITICAL,
                 name="meta.purchase")
    runner.defer(boom, max_cost_seconds=0.5, name="crm.sync")
    runner.defer(lambda: None, max_cost_seconds=60, priority=PRIORITY_LOW, name="too.costly")
    runner.defer(lambda: None, max_cost_seconds=1, name="cancelled")
    runner.forget("cancelled")
    return Response("ok")


def failing_view(request: Request) -> Response:
    request.deferred_task.defer(lambda: None, max_cost_seconds=1, name="meta.purchase")
    return Response("no", status=400)


def evil_view(request: Request) -> Response:
    request.deferred_task.defer(lambda: None, max_cost_seconds=1, name=EVIL)
    return Response("ok")


@pytest.fixture
def make_app(serve: Callable[[Configurator], TestApp]) -> Iterator[Callable[..., TestApp]]:

    def make(settings: dict[str, Any] | None = None,
             configure: Callable[[Configurator], None] | None = None) -> TestApp:
        config = Configurator(settings={
            "deferred_task.strategy": "close", "deferred_task.budget_seconds": "5",
            **(settings if settings is not None else OPEN),
        })
        config.include("pyramid_deferred")
        config.include("pyramid_deferred.dashboard")
        if configure is not None:
            configure(config)
        for name, view in (("shop", shop_view), ("failing", failing_view), ("evil", evil_view)):
            config.add_route(name, f"/{name}/*rest")
            config.add_view(view, route_name=name)
        return serve(config)

    yield make


def data(app: TestApp, **kwargs: Any) -> dict[str, Any]:
    answer = app.get("/_deferred/data.json", **kwargs)
    assert answer.content_type == "application/json"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Cache-Control"] == "no-store"
    result: dict[str, Any] = answer.json
    return result


def test_the_json_holds_each_run_s_tasks_on_the_response_s_timeline(make_app):
    app = make_app()
    app.get("/shop/cart?card=4242")

    payload = data(app)

    assert payload["pid"] == os.getpid() and str(os.getpid()) in payload["scope"]
    assert payload["shared"] is False
    [run] = payload["runs"]
    assert run["pid"] == os.getpid(), "each run with the pid of the process that ran it"
    assert run["request"] == "GET /shop/cart", "method and path, never the query string"
    assert run["status"] == 200 and run["trigger"] == "close"
    assert run["wait_seconds"] >= 0 and run["budget_seconds"] == 5.0
    tasks = {task["name"]: task for task in run["tasks"]}
    assert [task["outcome"] for task in run["tasks"]] == ["forgotten", "executed", "failed", "skipped"]
    purchase, crm, costly = tasks["meta.purchase"], tasks["crm.sync"], tasks["too.costly"]
    assert purchase["start_seconds"] == run["wait_seconds"]
    assert purchase["duration_seconds"] >= 0.01
    assert crm["start_seconds"] == pytest.approx(purchase["start_seconds"] + purchase["duration_seconds"])
    assert crm["error"] == "KeyError", "the type only: an exception's message may hold anything"
    assert "secret detail" not in json.dumps(payload)
    assert costly["duration_seconds"] is None and costly["max_cost_seconds"] == 60
    assert tasks["cancelled"]["outcome"] == "forgotten"


def test_a_failed_request_s_tasks_show_as_discarded(make_app):
    app = make_app()
    app.get("/failing/", status=400)

    [run] = data(app)["runs"]

    assert run["status"] == 400
    assert [(t["name"], t["outcome"]) for t in run["tasks"]] == [("meta.purchase", "discarded")]


def test_per_name_counts_and_percentiles_against_the_declared_cost(make_app):
    app = make_app()
    for _ in range(3):
        app.get("/shop/")

    stats = {task["name"]: task for task in data(app)["tasks"]}

    assert stats["meta.purchase"]["counts"]["executed"] == 3
    assert stats["crm.sync"]["counts"]["failed"] == 3
    assert stats["too.costly"]["counts"]["skipped"] == 3 and stats["too.costly"]["p50_seconds"] is None
    assert stats["cancelled"]["counts"]["forgotten"] == 3
    assert stats["meta.purchase"]["samples"] == 3
    assert 0.01 <= stats["meta.purchase"]["p50_seconds"] <= stats["meta.purchase"]["p99_seconds"]
    assert stats["meta.purchase"]["declared_cost_seconds"] == 0.5


def test_percentiles_and_the_cost_flags():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) is None and percentile([7.0], 0.99) == 7.0
    assert cost_flag(0.5, 0.9, 10) == "under"
    assert cost_flag(0.5, 0.0005 + 0.5, 10) is None, "within a millisecond is not an overrun"
    assert cost_flag(10.0, 0.2, 10) == "far_above"
    assert cost_flag(10.0, 0.2, 2) is None, "too few samples to say"
    assert cost_flag(1.0, 0.5, 10) is None
    assert cost_flag(1.0, None, 0) is None


def test_memory_is_bounded_runs_in_a_ring_and_names_least_recently_seen_dropped(make_app):
    app = make_app({**OPEN, "dashboard.recent_runs": "3", "dashboard.max_task_names": "2"})
    for number in range(5):
        app.get(f"/shop/{number}")

    payload = data(app)

    assert [run["request"] for run in payload["runs"]] == ["GET /shop/4", "GET /shop/3", "GET /shop/2"]
    assert payload["total_runs"] == 5
    assert len(payload["tasks"]) == 2
    assert payload["evicted_task_names"] > 0


def test_the_hand_off_queue_and_the_app_s_panels(make_app):
    def configure(config: Configurator) -> None:
        config.add_deferred_dashboard_panel("Breakers", lambda request: [
            {"service": "meta", "state": "closed", "failures": 0},
            {"service": EVIL, "state": "open", "failures": 5},
        ])
        config.add_deferred_dashboard_panel("Broken", lambda request: 1 / 0)

    app = make_app(configure=configure)

    payload = data(app)

    assert payload["queue"] == {"length": 0, "capacity": 100, "busy_threads": 0, "threads": 2}
    breakers, broken = payload["panels"]
    assert breakers == {"title": "Breakers", "error": None, "rows": [
        {"service": "meta", "state": "closed", "failures": 0},
        {"service": EVIL, "state": "open", "failures": 5},
    ]}
    assert broken["title"] == "Broken" and broken["rows"] == [] and "logged" in broken["error"]


def test_names_and_paths_are_data_never_markup(make_app):
    app = make_app()
    app.get("/evil/<script>alert(1)</script>")

    page = app.get("/_deferred")
    raw = app.get("/_deferred/data.json")

    # The page is a fixed document: the script fills it in with textContent.
    assert EVIL not in page.text and "<script>alert" not in page.text
    assert page.content_type == "text/html"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert raw.content_type == "application/json"
    [run] = raw.json["runs"]
    assert run["tasks"][0]["name"] == EVIL
    assert run["request"] == "GET /evil/<script>alert(1)</script>"
    script = app.get("/_deferred/assets/dashboard.js")
    assert script.content_type == "text/javascript"
    assert "innerHTML" not in script.text.replace("(never innerHTML)", "")


def test_control_characters_in_a_path_are_shown_as_replacement_characters(make_app):
    app = make_app()
    app.get("/evil/a%09b%1B[31m" + "x" * 300)

    [run] = data(app)["runs"]

    assert "\t" not in run["request"] and "\x1b" not in run["request"]
    assert run["request"].startswith("GET /evil/a\ufffdb\ufffd[31m") and len(run["request"]) == 200


def test_assets_are_served_with_their_types_and_nothing_else(make_app):
    app = make_app({"dashboard.token": TOKEN})

    assert app.get("/_deferred/assets/dashboard.css").content_type == "text/css"
    assert app.get("/_deferred/assets/../__init__.py", status=404)
    assert app.get("/_deferred/assets/dashboard.html", status=404)


def test_the_include_refuses_to_start_without_a_token_unless_told_it_is_development():
    config = Configurator(settings={})
    config.include("pyramid_deferred")
    with pytest.raises(ConfigError, match="APP_DASHBOARD_TOKEN"):
        config.include("pyramid_deferred.dashboard")


def test_a_token_too_short_is_refused_without_being_shown():
    config = Configurator(settings={"dashboard.token": "short-secret"})
    config.include("pyramid_deferred")
    with pytest.raises(ConfigError) as raised:
        config.include("pyramid_deferred.dashboard")
    assert "dashboard.token" in str(raised.value) and "short-secret" not in str(raised.value)


@pytest.mark.parametrize("headers", [
    {},
    {TOKEN_HEADER: "wrong-token-of-the-right-length!!"},
    {TOKEN_HEADER: TOKEN[:-1]},
    {TOKEN_HEADER: "tökén-ünicode-∂"},
    {"Authorization": "Basic " + TOKEN},
    {"Cookie": f"{COOKIE_NAME}={TOKEN}"},
    {"Cookie": f"{COOKIE_NAME}=nonsense"},
    {TOKEN_HEADER: ""},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer"},
], ids=["none", "wrong", "prefix", "non-ascii", "basic-auth", "raw-token-cookie", "bad-cookie",
        "empty-header", "empty-bearer", "bare-bearer"])
def test_without_the_token_the_page_and_the_data_are_403_never_500(make_app, headers):
    app = make_app({"dashboard.token": TOKEN})
    app.get("/shop/")

    page = app.get("/_deferred", headers=headers, status=403)
    answer = app.get("/_deferred/data.json", headers=headers, status=403)

    assert "meta.purchase" not in page.text and answer.json == {"error": "forbidden"}
    assert answer.content_type == "application/json"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert '<form method="post" action="/_deferred">' in page.text and TOKEN not in page.text


def test_the_token_opens_the_page_as_a_header_or_a_bearer_token(make_app):
    app = make_app({"dashboard.token": TOKEN})

    assert app.get("/_deferred", headers={TOKEN_HEADER: TOKEN}).status_int == 200
    assert data(app, headers={TOKEN_HEADER: TOKEN})["runs"] == []
    assert data(app, headers={"Authorization": f"Bearer {TOKEN}"})["runs"] == []


def test_the_form_sets_a_cookie_derived_from_the_token_and_the_token_goes_in_no_url(make_app, logs):
    app = make_app({"dashboard.token": TOKEN})

    wrong = app.post("/_deferred", {"token": "wrong-token-of-the-right-length!!"}, status=403)
    assert "Wrong token" in wrong.text and COOKIE_NAME not in app.cookies
    for empty in ("", "  "):
        app.post("/_deferred", {"token": empty}, status=403)
    assert COOKIE_NAME not in app.cookies
    right = app.post("/_deferred", {"token": TOKEN}, status=303)

    assert right.location.endswith("/_deferred") and TOKEN not in right.location
    cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/_deferred" in cookie
    assert TOKEN not in cookie, "the cookie holds an HMAC of the token, not the token"
    assert app.get("/_deferred").status_int == 200  # WebTest sends the cookie back
    assert data(app)["pid"] == os.getpid()
    assert not [record for record in logs.records if TOKEN in record.message]


def test_a_malformed_form_is_a_403(make_app):
    app = make_app({"dashboard.token": TOKEN})
    app.post("/_deferred", b"--x\r\nbroken", content_type="multipart/form-data; boundary=x", status=403)
    app.post("/_deferred", status=403)


def test_a_token_also_closes_the_page_in_development(make_app):
    app = make_app({**OPEN, "dashboard.token": TOKEN})
    app.get("/_deferred", status=403)
    app.get("/_deferred", headers={TOKEN_HEADER: TOKEN}, status=200)


def test_without_the_include_there_is_no_page_and_no_link():
    config = Configurator()
    config.include("pyramid_deferred")
    router = config.make_wsgi_app()
    try:
        TestApp(router).get("/_deferred", status=404)
        assert dashboard_url(router.registry) is None
    finally:
        get_hook(router.registry).worker.shutdown(grace_seconds=0)


def test_the_path_is_a_setting(make_app):
    app = make_app({**OPEN, "dashboard.path": "/ops/tasks/"})
    app.get("/ops/tasks/data.json", status=200)
    page = app.get("/ops/tasks")
    assert 'src="/ops/tasks/assets/dashboard.js"' in page.text
    assert dashboard_url(app.app.registry) == "/ops/tasks"
    with pytest.raises(ConfigError, match=r"dashboard\.path"):
        make_app({**OPEN, "dashboard.path": "javascript:alert(1)"})


def test_without_redis_the_page_says_it_shows_one_process_and_which(make_app):
    app = make_app()
    app.get("/shop/")

    payload = data(app)

    assert payload["shared"] is False and payload["partial"] is None and payload["publishing"] is None
    assert payload["pids"] == [os.getpid()]
    [worker] = payload["workers"]
    assert worker["pid"] == os.getpid() and worker["this"] and worker["total_runs"] == 1
    assert f"worker process {os.getpid()} only" in payload["scope"]
    assert "dashboard.redis_url" in payload["scope"], "and how to see them all"


IMPORTS_PROBE = """
import sys, threading
from pyramid.config import Configurator
from pyramid.response import Response
from webtest import TestApp

config = Configurator(settings={settings!r})
config.include("pyramid_deferred")
if {include!r}:
    config.include("pyramid_deferred.dashboard")

def view(request):
    request.deferred_task.defer(lambda: None, max_cost_seconds=1, name="a.task")
    return Response("ok")

config.add_route("v", "/")
config.add_view(view, route_name="v")
TestApp(config.make_wsgi_app()).get("/")
print(sorted(m for m in sys.modules
             if m.split(".")[0] == "redis" or m.startswith("pyramid_deferred.dashboard")))
print(sorted(t.name for t in threading.enumerate() if "dashboard" in t.name))
"""


def imported_after_a_request(settings: dict[str, str], *, include: bool) -> tuple[list[str], list[str]]:
    """Modules and threads of a fresh process that served one request deferring one task."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    code = IMPORTS_PROBE.format(settings={"deferred_task.strategy": "close", **settings}, include=include)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    modules, threads = out.stdout.strip().splitlines()
    return json.loads(modules.replace("'", '"')), json.loads(threads.replace("'", '"'))


def test_nothing_of_the_page_is_imported_or_started_unless_it_is_included():
    assert imported_after_a_request({}, include=False) == ([], [])

    modules, threads = imported_after_a_request(OPEN, include=True)
    assert "pyramid_deferred.dashboard.recorder" in modules
    assert not [m for m in modules if m.split(".")[0] == "redis" or m.endswith(
        ("sharing", "publisher", "redis_store", "wire", "merge", "outage"))], "no Redis without a URL"
    assert threads == []

    url = {**OPEN, "dashboard.redis_url": "redis://127.0.0.1:1/0"}  # nothing listens: never waited for
    modules, threads = imported_after_a_request(url, include=True)
    assert "redis" in modules and "pyramid_deferred.dashboard.publisher" in modules
    assert threads == ["deferred-dashboard-publisher"], "one publisher, started by the first run"

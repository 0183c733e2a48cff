"""Durable tasks spill to Celery, with the real parts: a redis-server and a Celery worker process
started here (127.0.0.1, one each for the module, stopped by pid at its end), the shop's revenue
events against a stub of Meta, and a waitress server stopped by SIGTERM.

Every wait is a bounded poll; every assertion on "exactly once" waits a little longer after the
first delivery, so that a duplicate would have had time to arrive.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from loguru import logger
from pyramid_deferred.hook import get_hook
from pytest_httpserver import HTTPServer
from webtest import TestApp
from werkzeug import Request as WerkzeugRequest
from werkzeug import Response as WerkzeugResponse

from app.factory import build_container, make_configurator
from app.services.meta import API_VERSION
from tests.functional.shop import place_order
from tests.integration.services import credentials
from tests.integration.services.redis_server import running_redis
from tests.servers.contract import read_task_log, wait_for_marker
from tests.servers.probe_app import DURABLE_LOG
from tests.servers.servers import WAITRESS, WORKTREE, free_port, poll, running_server, server_env, terminate

pytestmark = pytest.mark.servers

META_PATH = f"/{API_VERSION}/{credentials.META_PIXEL_ID}/events"
RESET_TIMEOUT = 1.5
BROWSER = {"HTTP_USER_AGENT": "Mozilla/5.0 (durable test)", "REMOTE_ADDR": "203.0.113.9"}
DELIVERY_TIMEOUT = 20.0
DUPLICATE_WINDOW = 1.0
CELERY = WORKTREE / ".venv" / "bin" / "celery"


@dataclass
class MetaStub:
    """Meta's events endpoint: answers ``status``; records (time, event_id, status) per call."""

    status: int = 200
    calls: list[tuple[float, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: WerkzeugRequest) -> WerkzeugResponse:
        event_id = json.loads(request.get_data())["data"][0]["event_id"]
        with self.lock:
            status = self.status
            self.calls.append((time.time(), event_id, status))
        return WerkzeugResponse('{"events_received": 1}' if status == 200 else "down", status=status)

    def delivered(self, event_id: str) -> list[float]:
        with self.lock:
            return [at for at, seen, status in self.calls if seen == event_id and status == 200]


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path
    probe_dir: Path
    broker_url: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def stub_server() -> Iterator[HTTPServer]:
    """This module's own stub server (the session's may hold other tests' handlers)."""
    server = HTTPServer(host="127.0.0.1", port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def meta(stub_server: HTTPServer) -> Iterator[MetaStub]:
    stub = MetaStub()
    stub_server.expect_request(META_PATH, method="POST").respond_with_handler(stub)
    yield stub
    stub_server.clear()


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    with running_redis(port, tmp_path_factory.mktemp("redis")):
        yield f"redis://127.0.0.1:{port}/0"


def meta_env(stub_server: HTTPServer) -> dict[str, str]:
    return credentials.meta_env(stub_server.url_for("").rstrip("/"), META_BREAKER_FAIL_MAX="2",
                                META_BREAKER_RESET_TIMEOUT=str(RESET_TIMEOUT))


@pytest.fixture(scope="module")
def worker(
    broker_url: str, stub_server: HTTPServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """``make worker``'s command, as a subprocess of this test module."""
    probe_dir = tmp_path_factory.mktemp("durable")
    (probe_dir / "markers").mkdir()
    log_path = probe_dir / "celery.log"
    env = server_env(probe_dir, {
        **meta_env(stub_server),
        "APP_DEFERRED_TASK_BROKER_URL": broker_url,
        "APP_DEFERRED_TASK_SPILL_BACKOFF_SECONDS": "0.2",
        "APP_DEFERRED_TASK_SPILL_MAX_RETRIES": "6",
        "DEFERRED_TASK_LOG_PATH": str(probe_dir / "worker_task.log"),
        "APP_LOG_LEVEL": "INFO",
    })
    argv = [str(CELERY), "-A", "app.worker", "worker", "--pool=solo", "--concurrency=1", "-l", "info",
            "--without-heartbeat", "--without-gossip", "--without-mingle",
            "-n", f"durable-test-{os.getpid()}@%h"]
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, cwd=WORKTREE, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT)
    running = Worker(process, log_path, probe_dir, broker_url)
    try:
        ready = poll(lambda: process.poll() is not None or " ready." in running.log(),
                     timeout=30, interval=0.1)
        assert ready and process.poll() is None, f"the Celery worker did not start:\n{running.log()}"
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def records() -> Iterator[list[dict[str, Any]]]:
    """Every log record of this process during the test."""
    seen: list[dict[str, Any]] = []
    sink = logger.add(lambda message: seen.append(dict(message.record)), level="DEBUG")
    yield seen
    logger.remove(sink)


@contextlib.contextmanager
def shop(stub_server: HTTPServer, **settings: str) -> Iterator[tuple[TestApp, list[Any]]]:
    """The shop in this process, Meta live against the stub, with ``settings`` (.ini keys)."""
    container = build_container(settings, environ=meta_env(stub_server))
    container.logging.override(providers.Resource(no_logging))
    config = make_configurator(settings, container)
    reports: list[Any] = []
    config.add_deferred_task_observer(lambda batch, report: reports.append(report))
    app = TestApp(config.make_wsgi_app(), extra_environ=BROWSER)
    try:
        yield app, reports
    finally:
        get_hook(app.app.registry).worker.shutdown(grace_seconds=5)
        container.shutdown_resources()


def no_logging() -> None:
    """The test keeps loguru's sinks as they are (its own sink reads the records)."""


def messages(records: list[dict[str, Any]], level: str) -> list[str]:
    return [r["message"] for r in records if r["level"].name == level]


def test_a_durable_task_the_budget_skips_spills_and_the_worker_runs_it_exactly_once(
    stub_server, meta, worker, records
):
    with shop(stub_server, **{"deferred_task.broker_url": worker.broker_url,
                              "deferred_task.budget_seconds": "0.001"}) as (app, reports):
        order = place_order(app).json["order"]
    checkout = reports[-1]
    assert "meta.purchase" in checkout.spilled and "manago.purchase" in checkout.spilled
    assert checkout.balanced and checkout.deferred == len(checkout.results)
    assert meta.delivered(order) == []  # nothing was sent from the web process
    assert poll(lambda: meta.delivered(order), timeout=DELIVERY_TIMEOUT), worker.log()
    time.sleep(DUPLICATE_WINDOW)
    assert len(meta.delivered(order)) == 1
    notices = messages(records, "NOTICE")
    assert any("Spilled deferred task meta.purchase to Celery (skipped" in m for m in notices)


def test_a_service_known_down_spills_without_a_call_and_is_delivered_once_after_the_reset_timeout(
    stub_server, meta, worker, records
):
    meta.status = 500
    with shop(stub_server, **{"deferred_task.broker_url": worker.broker_url}) as (app, reports):
        # fail_max 2: the cart's AddToCart and the Purchase fail, and the breaker opens
        failing = [place_order(app).json["order"]]
        spilled_at = time.time()
        down = place_order(app).json["order"]
        # The open breaker: no call for it, no budget spent (the Celery worker may meanwhile be
        # retrying the first order's purchase: that call is the worker's, not this process's).
        assert [call for call in meta.calls if call[1] == down] == []
        meta.status = 200  # the service recovers
    reasons = [m for m in messages(records, "NOTICE") if m.startswith("Spilled deferred task meta.purchase")]
    assert len(reasons) == 1 and "(service_down: its service's circuit is open" in reasons[0]
    assert sum("Spilled deferred task meta.purchase to Celery (failed" in m
               for m in messages(records, "WARNING")) == 1
    assert all(report.balanced for report in reports)
    for order in [*failing, down]:
        assert poll(lambda order=order: meta.delivered(order),  # type: ignore[misc]
                    timeout=DELIVERY_TIMEOUT), worker.log()
    assert meta.delivered(down)[0] >= spilled_at + RESET_TIMEOUT * 0.8  # Celery waited for the reset
    time.sleep(DUPLICATE_WINDOW)
    assert [len(meta.delivered(order)) for order in [*failing, down]] == [1, 1]


def test_sigterm_with_durable_tasks_queued_spills_them_none_lost_none_run_twice(worker):
    spec = WAITRESS.__class__(
        "waitress-durable", WAITRESS.argv, concurrency=4, family="waitress",
        env={"APP_DEFERRED_TASK_BROKER_URL": worker.broker_url, "APP_DEFERRED_TASK_STRATEGY": "thread",
             "APP_DEFERRED_TASK_WORKER_THREADS": "1", "APP_DEFERRED_TASK_SHUTDOWN_GRACE_SECONDS": "0.5"},
    )
    with running_server(spec, worker.probe_dir) as server:
        from tests.servers.servers import fetch

        response = fetch(server.port, "/probe/durable?rid=sigterm&seconds=3&tasks=3")
        assert response.status == 200
        wait_for_marker(server, "sigterm.started", timeout=10)
        server_pid = server.process.pid
        code = terminate(server, timeout=15)
        assert code == 0, server.log_text()
        task_log = read_task_log(server)

    durable_log = worker.probe_dir / DURABLE_LOG

    def lines() -> list[list[str]]:
        text = durable_log.read_text() if durable_log.exists() else ""
        return [line.split() for line in text.splitlines() if line.startswith("sigterm ")]

    assert poll(lambda: len(lines()) >= 3, timeout=DELIVERY_TIMEOUT), worker.log()
    time.sleep(DUPLICATE_WINDOW)
    runs = lines()
    assert sorted(index for _, index, _ in runs) == ["0", "1", "2"]  # none lost, none twice
    assert all(int(pid) != server_pid for _, _, pid in runs)  # the worker ran them, not the server
    assert "probe.sleep.sigterm (still running)" in task_log  # the plain task is named, as before
    assert "probe.durable" not in next(line for line in task_log.splitlines() if "grace period" in line)


def test_broker_down_logs_the_task_for_replay_without_touching_the_response(stub_server, meta, records):
    closed = free_port()
    url = f"redis://:pw-never-logged@127.0.0.1:{closed}/0"
    with shop(stub_server, **{"deferred_task.broker_url": url, "deferred_task.budget_seconds": "0.001",
                              "deferred_task.broker_timeout_seconds": "0.5"}) as (app, reports):
        started = time.monotonic()
        response = place_order(app)
        took = time.monotonic() - started
    assert response.status_int == 200 and response.json["status"] == "placed"
    assert took < 5.0  # one bounded attempt, then the rest fail at once (logged)
    errors = [m for m in messages(records, "ERROR") if "could not spill to Celery" in m]
    meta_error = next(m for m in errors if m.startswith("Deferred task meta.purchase "))
    assert "LOST unless replayed: key=" in meta_error
    assert "function=app.durable_tasks:meta_event" in meta_error
    assert "meta.purchase" in reports[-1].skipped and reports[-1].balanced
    every_line = "\n".join(str(r["message"]) + str(r["extra"]) + str(r["exception"]) for r in records)
    assert "pw-never-logged" not in every_line

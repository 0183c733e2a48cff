"""The real parts of the durable-task tests, shared by their modules: a redis-server (the broker
and the keys), a Meta stub, the shop's Celery worker as a subprocess, the shop in this process,
and the keys both sides share. A test module imports the fixtures it uses (pytest finds them in
its namespace) and gets its own instances: one redis-server and one worker per module, stopped
by pid at its end.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from dependency_injector import providers
from loguru import logger
from pyramid_deferred.celery import TASK_NAME
from pyramid_deferred.durable import MessageCodec
from pyramid_deferred.hook import get_hook
from pytest_httpserver import HTTPServer
from redis import Redis
from webtest import TestApp
from werkzeug import Request as WerkzeugRequest
from werkzeug import Response as WerkzeugResponse

from app.factory import build_container, make_configurator
from app.services.meta import API_VERSION
from tests.integration.services import credentials
from tests.integration.services.redis_server import running_redis
from tests.loguru_capture import add_on_records_in_loguru
from tests.servers.servers import WORKTREE, free_port, poll, server_env

META_PATH = f"/{API_VERSION}/{credentials.META_PIXEL_ID}/events"
RESET_TIMEOUT = 1.5
BROWSER = {"HTTP_USER_AGENT": "Mozilla/5.0 (durable test)", "REMOTE_ADDR": "203.0.113.9"}
DELIVERY_TIMEOUT = 20.0
DUPLICATE_WINDOW = 1.0
CELERY = WORKTREE / ".venv" / "bin" / "celery"
WORKER_APP = "tests.servers.durable_worker"
"""The shop's worker app (app/worker.py), which also declares the probe app's durable function."""

SIGNING_KEY = credentials.DURABLE_SIGNING_KEY
ENCRYPTION_KEY = credentials.DURABLE_ENCRYPTION_KEY
KEYS_ENV = {"APP_DEFERRED_TASK_SIGNING_KEY": SIGNING_KEY, "APP_DEFERRED_TASK_ENCRYPTION_KEY": ENCRYPTION_KEY}
"""What the web processes and the workers share (docs/durable.md: deployment)."""
KEYS_INI = {"deferred_task.signing_key": SIGNING_KEY, "deferred_task.encryption_key": ENCRYPTION_KEY}


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

    def attempts(self, event_id: str) -> int:
        with self.lock:
            return sum(seen == event_id for _, seen, _ in self.calls)


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


@contextlib.contextmanager
def running_worker(broker_url: str, probe_dir: Path, env: Mapping[str, str], *, beat: bool = False,
                   app: str = WORKER_APP) -> Iterator[Worker]:
    """``make worker``'s command (the shop's worker app, see WORKER_APP), as a subprocess; its
    output (stdout and stderr) in ``probe_dir/celery.log``. ``beat``: with its embedded beat
    (``-B``), which runs the outbox sweep on its schedule."""
    (probe_dir / "markers").mkdir(exist_ok=True)
    log_path = probe_dir / "celery.log"
    full_env = server_env(probe_dir, {
        "APP_DEFERRED_TASK_BROKER_URL": broker_url,
        **KEYS_ENV,
        "DEFERRED_TASK_LOG_PATH": str(probe_dir / "worker_task.log"),
        "APP_LOG_LEVEL": "INFO",
        **env,
    })
    argv = [str(CELERY), "-A", app, "worker", "--pool=solo", "--concurrency=1", "-l", "info",
            "--without-heartbeat", "--without-gossip", "--without-mingle",
            "-n", f"durable-test-{os.getpid()}-{probe_dir.name}@%h"]
    if beat:
        argv += ["-B", "-s", str(probe_dir / "beat-schedule")]
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, cwd=WORKTREE, env=full_env, stdin=subprocess.DEVNULL, stdout=log,
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


@pytest.fixture(scope="module")
def worker(
    broker_url: str, stub_server: HTTPServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    with running_worker(broker_url, tmp_path_factory.mktemp("durable"), {
        **meta_env(stub_server),
        "APP_DEFERRED_TASK_SPILL_BACKOFF_SECONDS": "0.2",
        "APP_DEFERRED_TASK_SPILL_MAX_RETRIES": "6",
    }) as running:
        yield running


@pytest.fixture
def records() -> Iterator[list[dict[str, Any]]]:
    """Every log record of this process during the test."""
    seen: list[dict[str, Any]] = []
    sink = logger.add(lambda message: seen.append(dict(message.record)), level="DEBUG")
    with add_on_records_in_loguru():  # the add-on logs through stdlib: bridged, as the shop does
        yield seen
    logger.remove(sink)


@contextlib.contextmanager
def shop(stub_server: HTTPServer, **settings: str) -> Iterator[tuple[TestApp, list[Any]]]:
    """The shop in this process, Meta live against the stub, with ``settings`` (.ini keys; the
    shared keys unless given)."""
    settings = {**KEYS_INI, **settings}
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


def worker_lines(worker: Worker, *needles: str) -> list[str]:
    """The worker's output lines holding every one of ``needles``."""
    return [line for line in worker.log().splitlines() if all(needle in line for needle in needles)]


def publish(broker_url: str, message: object, *, task_id: str, queue: str = "celery") -> None:
    """Write ``message`` into the broker as the one argument of ``pyramid_deferred.run_durable``, in
    kombu's Redis format, as any Celery app would: one with no key of ours (a forger's)."""
    forger = Celery("forger", broker=broker_url, set_as_current=False)
    forger.conf.update(task_serializer="json", broker_connection_retry_on_startup=False)
    try:
        forger.send_task(TASK_NAME, args=[message], task_id=task_id, queue=queue)
    finally:
        forger.close()


def codec() -> MessageCodec:
    """The codec of the keys the web processes and the workers share."""
    return MessageCodec([SIGNING_KEY], [ENCRYPTION_KEY])


def every_value(client: Redis) -> Iterator[tuple[bytes, bytes]]:
    """Every key of every type with each value it holds, and what kombu's envelopes wrap: the JSON
    message whose ``body`` is base64, and what that body holds (decoded again, as deep as it goes)."""
    for key in client.scan_iter(count=1000):
        kind = as_bytes(client.type(key)).decode()
        values: list[Any]
        if kind == "string":
            values = [client.get(key)]
        elif kind == "list":
            values = list(client.lrange(key, 0, -1))
        elif kind == "hash":
            values = [*client.hkeys(key), *client.hvals(key)]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = [pair[0] for pair in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "none":  # expired between the scan and the read
            continue
        else:
            raise AssertionError(f"Redis key {key!r} has a type this scan does not read: {kind}")
        name = as_bytes(key)
        for value in [key, *values]:
            if value is not None:
                yield name, as_bytes(value)
                for inner in _wrapped(as_bytes(value)):
                    yield name, inner


def as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _wrapped(value: bytes, depth: int = 0) -> Iterator[bytes]:
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return
    for text in _strings(data):
        yield text.encode()
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError:
            continue
        if raw and depth < 4:
            yield raw
            yield from _wrapped(raw, depth + 1)


def _strings(data: object) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, list):
        for item in data:
            yield from _strings(item)
    elif isinstance(data, dict):
        for name, item in data.items():
            yield name
            yield from _strings(item)

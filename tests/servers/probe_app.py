"""The real application plus probe routes, for the real-server tests only.

Served as ``gunicorn 'tests.servers.probe_app:make_app()'`` or
``waitress-serve --call tests.servers.probe_app:make_app``. Everything the probes write goes
under the directory named by the ``PROBE_DIR`` environment variable.

``RidMiddleware`` wraps the Pyramid app: it publishes the request id (``?rid=``) in a
threadlocal on entry and clears it only after the inner body's ``close()`` returned, which
is where the hook runs the request's deferred tasks. A task that records the threadlocal
therefore shows at the end of *which* request it ran: a runner shared between requests
would show another request's id (or none).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from dependency_injector import providers
from pyramid.request import Request
from pyramid.response import Response

from app.deferred_task import DeferredTaskRunner
from app.factory import build_container, make_configurator

PROBE_DIR_ENV = "PROBE_DIR"
RUNNER_SCOPE_ENV = "PROBE_RUNNER_SCOPE"
"""``shared`` swaps the per-request runner for one process-wide Singleton: the broken design
the isolation test must be able to detect (used by the negative-control test)."""

MARKERS = "markers"
ISOLATION_LOG = "isolation.log"
SMALL_BODY = b"s" * 100
LARGE_BODY = b"L" * (1 << 20)
ISOLATION_TASKS = 3

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_current = threading.local()


def current_rid() -> str:
    """The id of the request whose (inner) body this thread is serving or closing; '-' if none."""
    rid: str | None = getattr(_current, "rid", None)
    return rid if rid else "-"


class RidMiddleware:
    def __init__(self, app: WSGIApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        _current.rid = query.get("rid", [""])[0]
        try:
            body = self._app(environ, start_response)
        except BaseException:
            _current.rid = None
            raise
        return _RidBody(body)


class _RidBody:
    """Forwards the body; ``close()`` closes the inner body (running the tasks), then clears."""

    def __init__(self, body: Iterable[bytes]) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            _current.rid = None


def probe_dir() -> Path:
    return Path(os.environ[PROBE_DIR_ENV])


def _query_str(request: Request, key: str) -> str:
    value = request.GET.get(key, "")
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise ValueError(f"?{key}= must be a non-empty [A-Za-z0-9_-] string, got {value!r}")
    return str(value)


def _write_marker(rid: str, started: float) -> None:
    record = {
        "rid": rid,
        "seen_rid": current_rid(),
        "started": started,
        "finished": time.time(),
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
    }
    directory = probe_dir() / MARKERS
    partial = directory / f".{rid}.tmp"
    partial.write_text(json.dumps(record))
    os.replace(partial, directory / f"{rid}.json")  # readers never see half a marker


def sleep_view(request: Request) -> Response:
    """Defers a task that sleeps ``seconds`` and then writes ``markers/<rid>.json``."""
    rid = _query_str(request, "rid")
    seconds = float(request.GET.get("seconds", "1.5"))
    body = LARGE_BODY if request.GET.get("size") == "large" else SMALL_BODY

    def sleep_then_mark() -> None:
        started = time.time()
        time.sleep(seconds)
        _write_marker(rid, started)

    request.deferred_task.defer(sleep_then_mark, max_cost_seconds=seconds + 1, name="probe.sleep")
    return Response(body=body, content_type="application/octet-stream")


def _append_line(own_rid: str, index: int) -> None:
    line = f"{own_rid} {index} {current_rid()} {os.getpid()} {threading.current_thread().name}\n"
    fd = os.open(probe_dir() / ISOLATION_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one short O_APPEND write: lines never interleave
    finally:
        os.close(fd)


def isolation_view(request: Request) -> Response:
    """Defers ``ISOLATION_TASKS`` tasks tagged with its rid, through both ways to the runner.

    Task 0 goes through ``request.deferred_task`` (the runner the hook captured), the others
    through ``container.deferred_task()``, looked up after ``hold`` seconds of simulated view
    work, during which other threads start their own requests.
    """
    rid = _query_str(request, "rid")
    hold = float(request.GET.get("hold", "0"))
    request.deferred_task.defer(lambda: _append_line(rid, 0), max_cost_seconds=0.5, name="probe.isolation")
    if hold:
        time.sleep(hold)
    container = request.registry.container
    for index in range(1, ISOLATION_TASKS):
        container.deferred_task().defer(
            lambda index=index: _append_line(rid, index), max_cost_seconds=0.5, name="probe.isolation"
        )
    return Response(body=rid.encode(), content_type="text/plain")


def pid_view(request: Request) -> Response:
    return Response(json_body={"pid": os.getpid(), "thread": threading.current_thread().name})


def make_app() -> WSGIApp:
    """Paste-free factory: the real app (container, hooks, views) plus the probe routes."""
    directory = probe_dir()
    (directory / MARKERS).mkdir(parents=True, exist_ok=True)
    settings = {
        "deferred_task.log_path": str(directory / "deferred_task.log"),
        "deferred_task.log_threshold": "DEBUG",
        "deferred_task.budget_seconds": "30",
        "app.log_level": "WARNING",
    }
    container = build_container(settings)
    if os.environ.get(RUNNER_SCOPE_ENV) == "shared":
        container.deferred_task.override(
            providers.Singleton(
                DeferredTaskRunner,
                enabled=container.config.deferred_task.enabled,
                budget_seconds=container.config.deferred_task.budget_seconds,
            )
        )
    config = make_configurator(settings, container)
    config.add_route("probe_sleep", "/probe/sleep")
    config.add_view(sleep_view, route_name="probe_sleep")
    config.add_route("probe_isolation", "/probe/isolation")
    config.add_view(isolation_view, route_name="probe_isolation")
    config.add_route("probe_pid", "/probe/pid")
    config.add_view(pid_view, route_name="probe_pid")
    return RidMiddleware(config.make_wsgi_app())

"""The real application plus probe routes, for the real-server tests only.

Served as ``gunicorn 'tests.servers.probe_app:make_app()'``,
``waitress-serve --call tests.servers.probe_app:make_app``, ``uwsgi --module
tests.servers.uwsgi_app`` or ``python -m tests.servers.wsgiref_server``. Everything the probes
write goes under the directory named by the ``PROBE_DIR`` environment variable.

``RidMiddleware`` wraps the Pyramid app: it publishes the request id (``?rid=``) in a
contextvar on entry and clears it once the inner body's ``close()`` returned. The hook runs a
request's tasks in a copy of the request's context (inline in ``close()``, on a hand-off
thread, or in uWSGI's after-request hook), so a task that records the contextvar shows at the
end of *which* request it ran: a runner shared between requests would show another request's
id.
"""

from __future__ import annotations

import contextvars
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from pyramid.request import Request
from pyramid.response import Response
from pyramid_deferred.core import DeferredTaskRunner
from pyramid_deferred.durable import durable_function

from app.factory import build_container, make_configurator

PROBE_DIR_ENV = "PROBE_DIR"
RUNNER_SCOPE_ENV = "PROBE_RUNNER_SCOPE"
"""``shared`` swaps the per-request runner for one process-wide Singleton: the broken design
the isolation test must be able to detect (used by the negative-control test)."""

MARKERS = "markers"
ISOLATION_LOG = "isolation.log"
STRESS_LOG = "stress.log"
DEFERRED_TASK_LOG = "deferred_task.log"
SMALL_BODY = b"s" * 100
LARGE_BODY = b"L" * (1 << 20)
STREAM_CHUNK = b"c" * 1000
STREAM_CHUNKS = 64
STREAMED_BODY = STREAM_CHUNK * STREAM_CHUNKS
SLOW_READER_BODY = b"R" * (2 << 20)
"""2 MiB: more than loopback's socket buffers hold for a client that reads slowly."""
BODIES = {"small": SMALL_BODY, "large": LARGE_BODY, "stream": STREAMED_BODY, "2MiB": SLOW_READER_BODY}
ISOLATION_TASKS = 3
EDGE_BODY = b"0123456789" * 10
EDGE_ETAG = "probe-etag"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_current_rid: contextvars.ContextVar[str | None] = contextvars.ContextVar("probe_rid", default=None)


def current_rid() -> str:
    """The id of the request whose context this code runs in; '-' if none."""
    return _current_rid.get() or "-"


class RidMiddleware:
    def __init__(self, app: Any) -> None:
        self._app = app

    @property
    def registry(self) -> Any:
        """The Pyramid registry, so gunicorn.conf.py finds the container behind the middleware."""
        return self._app.registry

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        _current_rid.set(query.get("rid", [""])[0] or None)
        try:
            body = self._app(environ, start_response)
        except BaseException:
            _current_rid.set(None)
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
            _current_rid.set(None)


def probe_dir() -> Path:
    return Path(os.environ[PROBE_DIR_ENV])


def _query_str(request: Request, key: str) -> str:
    value = request.GET.get(key, "")
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise ValueError(f"?{key}= must be a non-empty [A-Za-z0-9_-] string, got {value!r}")
    return str(value)


def _write_json(name: str, record: dict[str, Any]) -> None:
    directory = probe_dir() / MARKERS
    partial = directory / f".{name}.tmp"
    partial.write_text(json.dumps(record))
    os.replace(partial, directory / f"{name}.json")  # readers never see half a marker


def _write_marker(rid: str, started: float) -> None:
    _write_json(
        rid,
        {
            "rid": rid,
            "seen_rid": current_rid(),
            "started": started,
            "finished": time.time(),
            "pid": os.getpid(),
            "thread": threading.current_thread().name,
        },
    )


def _mark_started(rid: str) -> float:
    started = time.time()
    _write_json(f"{rid}.started", {"rid": rid, "started": started, "pid": os.getpid()})
    return started


def _streamed(body: Iterable[bytes]) -> Iterator[bytes]:
    """A generator body: WebOb cannot know its length, so it goes out without Content-Length."""
    yield from body


def _body_response(kind: str) -> Response:
    if kind == "stream":
        return Response(
            app_iter=_streamed([STREAM_CHUNK] * STREAM_CHUNKS), content_type="application/octet-stream"
        )
    return Response(body=BODIES[kind], content_type="application/octet-stream")


def sleep_view(request: Request) -> Response:
    """Defers ``tasks`` tasks (default 1) that each sleep ``seconds`` and write a marker.

    Marker ``<rid>`` (``<rid>-<n>`` for n > 0) is written when a task ends, ``<rid>.started``
    when the first one begins. ``cost`` is each task's declared cost (default seconds + 1);
    ``size`` picks the body: small (100 B), large (1 MiB), 2MiB or stream (no Content-Length).
    """
    rid = _query_str(request, "rid")
    seconds = float(request.GET.get("seconds", "1.5"))
    cost = float(request.GET.get("cost", seconds + 1))
    tasks = int(request.GET.get("tasks", "1"))

    def sleep_then_mark(name: str) -> None:
        started = _mark_started(rid) if name == rid else time.time()
        time.sleep(seconds)
        _write_marker(name, started)

    for index in range(tasks):
        name = rid if index == 0 else f"{rid}-{index}"
        request.deferred_task.defer(
            lambda name=name: sleep_then_mark(name), max_cost_seconds=cost, name=f"probe.sleep.{name}"
        )
    return _body_response(request.GET.get("size", "small"))


DURABLE_LOG = "durable.log"


@durable_function
def record_durable(rid: str, index: int) -> None:
    """A durable task: one line ``<rid> <index> <pid>`` per run, wherever it runs (this server,
    or the Celery worker a spill handed it to)."""
    line = f"{rid} {index} {os.getpid()}\n"
    fd = os.open(probe_dir() / DURABLE_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def durable_view(request: Request) -> Response:
    """Defers one plain task that sleeps ``seconds`` (priority 100), then ``tasks`` durable ones
    (``record_durable``): a SIGTERM while the first runs finds the durable ones queued."""
    from pyramid_deferred.durable import durable

    rid = _query_str(request, "rid")
    seconds = float(request.GET.get("seconds", "2"))

    def sleep_then_mark() -> None:
        started = _mark_started(rid)
        time.sleep(seconds)
        _write_marker(rid, started)

    request.deferred_task.defer(sleep_then_mark, max_cost_seconds=seconds + 1, priority=100,
                                name=f"probe.sleep.{rid}")
    for index in range(int(request.GET.get("tasks", "3"))):
        request.deferred_task.defer(durable(record_durable, rid, index), max_cost_seconds=1.0,
                                    name=f"probe.durable.{index}")
    return _body_response(request.GET.get("size", "stream"))


SLEEP_IN_DURABLE_ENV = "PROBE_DURABLE_SLEEP"
"""``0`` in the Celery worker's environment: :func:`sleep_durable` records at once there."""


@durable_function
def sleep_durable(rid: str, index: int, seconds: float) -> None:
    """A durable task that is still running when its process is killed: marker ``<rid>.started``,
    then ``seconds`` of sleep (not in the Celery worker), then its line, as :func:`record_durable`."""
    if os.environ.get(SLEEP_IN_DURABLE_ENV, "1") != "0":
        _mark_started(rid)
        time.sleep(seconds)
    record_durable(rid, index)


def outbox_view(request: Request) -> Response:
    """Defers a durable task that sleeps ``seconds`` (priority 100), then ``tasks`` durable ones
    queued behind it: a crash (SIGKILL) while the first runs leaves all of them to the outbox."""
    from pyramid_deferred.durable import durable

    rid = _query_str(request, "rid")
    seconds = float(request.GET.get("seconds", "30"))
    runner = request.deferred_task
    runner.defer(durable(sleep_durable, rid, 0, seconds), max_cost_seconds=1.0, priority=100,
                 name="probe.durable.sleep")
    for index in range(1, 1 + int(request.GET.get("tasks", "2"))):
        runner.defer(durable(record_durable, rid, index), max_cost_seconds=1.0, name=f"probe.durable.{index}")
    return _body_response(request.GET.get("size", "small"))


def _append_line(own_rid: str, index: int, log: str = ISOLATION_LOG) -> None:
    line = f"{own_rid} {index} {current_rid()} {os.getpid()} {threading.current_thread().name}\n"
    fd = os.open(probe_dir() / log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one short O_APPEND write: lines never interleave
    finally:
        os.close(fd)


def isolation_view(request: Request) -> Response:
    """Defers ``ISOLATION_TASKS`` tasks tagged with its rid, through both ways to the runner.

    Task 0 goes through ``request.deferred_task`` (the runner the hook captured), the others
    through ``container.deferred_task()``, looked up after ``hold`` seconds of simulated view
    work, during which other threads start their own requests. ``size=stream`` sends the body
    without Content-Length (the batch is then handed off on servers that need it).
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
    if request.GET.get("size") == "stream":
        return Response(app_iter=_streamed([rid.encode()]), content_type="text/plain")
    return Response(body=rid.encode(), content_type="text/plain")


class ProbeTaskError(RuntimeError):
    """Raised on purpose by a stress task, after it wrote its line."""


def stress_view(request: Request) -> Response:
    """Defers ``tasks`` tasks tagged with its rid (odd ones concurrent); task i raises after its
    line when bit i of ``fail`` is set. The body says what was deferred (``<rid> <tasks>``);
    ``size=stream`` sends it without Content-Length, so the batch is handed off where the server
    needs it."""
    rid = _query_str(request, "rid")
    tasks, fail = int(request.GET.get("tasks", "1")), int(request.GET.get("fail", "0"))

    def task(index: int) -> None:
        _append_line(rid, index, STRESS_LOG)
        if fail >> index & 1:
            raise ProbeTaskError(f"stress task {rid}/{index} raised on purpose")

    for index in range(tasks):
        name = "probe.stress.raises" if fail >> index & 1 else "probe.stress"
        # Odd tasks run concurrently, on the add-on's pool: each must still run once, in its own
        # request's context (current_rid()), whichever thread runs it.
        request.deferred_task.defer(
            lambda index=index: task(index), max_cost_seconds=0.5, name=name, concurrent=bool(index % 2)
        )
    body = f"{rid} {tasks}".encode()
    if request.GET.get("size") == "stream":
        return Response(app_iter=_streamed([body]), content_type="text/plain")
    return Response(body=body, content_type="text/plain")


class ProbeViewError(RuntimeError):
    """Raised by the edge view: no exception view handles it, so it escapes Pyramid."""


def edge_view(request: Request) -> Response:
    """Defers a plain task (line index 0) and an ``always`` task (index 1) that sleeps ``seconds``.

    ``raise=1`` raises past Pyramid; otherwise the response is conditional (ETag, ranges), so the
    request's headers (HEAD, If-None-Match, Range) make WebOb answer 200, 304, 206 or 416.
    """
    rid = _query_str(request, "rid")
    seconds = float(request.GET.get("seconds", "0"))

    def always_then_line() -> None:
        time.sleep(seconds)
        _append_line(rid, 1)

    runner: DeferredTaskRunner = request.deferred_task
    runner.defer(lambda: _append_line(rid, 0), max_cost_seconds=0.5, name=f"probe.edge.{rid}.plain")
    runner.defer(always_then_line, max_cost_seconds=seconds + 1, name=f"probe.edge.{rid}.always", always=True)
    if request.GET.get("raise"):
        raise ProbeViewError(f"probe view {rid} raised on purpose")
    return Response(
        body=EDGE_BODY, content_type="text/plain", conditional_response=True, etag=EDGE_ETAG
    )


BASE_EXCEPTIONS: dict[str, type[BaseException]] = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": SystemExit,
    "GeneratorExit": GeneratorExit,
}


def raise_view(request: Request) -> Response:
    """Defers a task that raises ``kind`` (a BaseException, as a task's own code might), then one
    that writes marker ``<rid>``: the second must run, and the worker and connection survive."""
    rid = _query_str(request, "rid")
    error = BASE_EXCEPTIONS[request.GET.get("kind", "KeyboardInterrupt")]

    def raising() -> None:
        raise error(f"raised by task {rid} on purpose")

    runner: DeferredTaskRunner = request.deferred_task
    runner.defer(raising, max_cost_seconds=0.5, priority=100, name=f"probe.raise.{rid}")
    runner.defer(lambda: _write_marker(rid, time.time()), max_cost_seconds=0.5, name=f"probe.after.{rid}")
    return Response(json_body={"pid": os.getpid()})


def pid_view(request: Request) -> Response:
    return Response(json_body={"pid": os.getpid(), "thread": threading.current_thread().name})


def make_app() -> WSGIApp:
    """Paste-free factory: the real app (container, hooks, views, shutdown) plus the probe routes."""
    directory = probe_dir()
    (directory / MARKERS).mkdir(parents=True, exist_ok=True)
    settings = {
        "deferred_task.log_path": str(directory / DEFERRED_TASK_LOG),
        "deferred_task.log_threshold": "DEBUG",
        "deferred_task.budget_seconds": "30",
        "app.log_level": "WARNING",
    }
    container = build_container(settings)
    config = make_configurator(settings, container)
    if os.environ.get(RUNNER_SCOPE_ENV) == "shared":
        # The negative control: one runner for every request, as a plain Singleton would be.
        shared: list[DeferredTaskRunner] = []

        def shared_runner(**options: Any) -> DeferredTaskRunner:
            if not shared:
                shared.append(DeferredTaskRunner(**options))
            return shared[0]

        config.set_deferred_task_runner_factory(shared_runner)
    for name, view in [
        ("sleep", sleep_view),
        ("isolation", isolation_view),
        ("edge", edge_view),
        ("stress", stress_view),
        ("pid", pid_view),
        ("raise", raise_view),
        ("durable", durable_view),
        ("outbox", outbox_view),
    ]:
        config.add_route(f"probe_{name}", f"/probe/{name}")
        config.add_view(view, route_name=f"probe_{name}")
    # The add-on drains its hand-off worker at exit and makes SIGTERM an exit where nobody
    # handles it (pserve, wsgiref), as for any app that includes it.
    app = RidMiddleware(config.make_wsgi_app())
    return app

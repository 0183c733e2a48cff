"""Issue 20's peers: each framework's post-response mechanism against its own bare request.

One harness for every mechanism, in one run: each case is one app answering ``/bench/none`` in
process, no socket. A WSGI app is called with an environ and a ``start_response``, its body
iterated and closed (where the add-on, Flask and Django run what was handed to them); Starlette
is driven as ASGI directly, ``await app(scope, receive, send)`` with a hand-written ``receive`` and
``send``, on one event loop. Cases:

- Pyramid, bare (a ``Configurator`` with one route and its view); with ``pyramid_deferred``
  included at its default settings (request id, watchdog, reports, observers), a request
  deferring nothing and one deferring 1, 10, 100 no-op tasks; without it,
  ``request.add_finished_callback`` with 1, 10, 100 no-ops;
- Flask, bare and ``response.call_on_close`` with 1, 10, 100 no-ops;
- Starlette, bare and ``BackgroundTasks`` with 1, 10, 100 no-ops, sync (Starlette runs them in
  its threadpool) or async;
- Django (``settings.configure``, one URL, ``WSGIHandler``), bare and with 1, 10, 100 no-op
  receivers on ``request_finished``, connected only while that case is timed.

Before timing, each case answers once with a counting task: status 200, the same body, and its
tasks run by the time the call returned (the work is inside what is timed, not on a thread).
Each case's requests per sample are set once, from a warm-up, so a sample lasts about
``sample_seconds``; then rounds: in each, every framework's cases are timed one after the other,
in an order that rotates from round to round, so a bare request and its mechanism share the
machine's noise. Figures are medians over the rounds; added = with - bare; per task =
(with *n* tasks - bare) / *n*. Console logging at WARNING (the add-on's INFO line per run is the
app's choice, and no peer writes one). Clock: ``time.perf_counter_ns``; the GC is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from webob import Request

from benchmarks import logsetup
from benchmarks.apps import django_app, peer_apps
from benchmarks.apps.peer_apps import PATH, AsyncTally, Tally, Task
from benchmarks.apps.work import BODY
from benchmarks.inprocess import WSGIApp, call

TASK_COUNTS = (1, 10, 100)
WARMUP_REQUESTS = 20
MIN_REQUESTS, MAX_REQUESTS = 3, 20_000
"""Requests per sample, whatever a case costs: a few even for the slowest, never unbounded."""
MIN_ROUNDS = 3
"""Rounds run even past the time limit: fewer would make no median."""

ASGIApp = Callable[..., Any]
Arming = Callable[[], AbstractContextManager[None]]
"""What must hold while a case is timed (Django's receivers); nothing for most."""


@dataclass(frozen=True)
class Case:
    """One app's request: ``call()`` once (status, body), ``run(n)`` n times, inside ``armed()``."""

    call: Callable[[], tuple[int, bytes]]
    run: Callable[[int], None]
    armed: Arming = field(default=contextlib.nullcontext)


def _wsgi_answer(app: WSGIApp, environ: dict[str, Any]) -> tuple[int, bytes]:
    """One request as :func:`benchmarks.inprocess.call` makes it, with its status and body kept."""
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: object = None) -> Callable[
        [bytes], None
    ]:
        status.append(line)
        return lambda data: None

    body = app(dict(environ), start_response)
    try:
        content = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return int(status[-1].split(" ", 1)[0]), content


def wsgi_case(app: WSGIApp, armed: Arming = contextlib.nullcontext) -> Case:
    environ: dict[str, Any] = Request.blank(PATH).environ

    def run(requests: int) -> None:
        for _ in range(requests):
            call(app, environ)

    return Case(call=lambda: _wsgi_answer(app, environ), run=run, armed=armed)


SCOPE: dict[str, Any] = {
    "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
    "method": "GET", "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
    "root_path": "", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 50000),
    "server": ("bench", 80),
}
REQUEST_MESSAGE = {"type": "http.request", "body": b"", "more_body": False}


async def _receive() -> dict[str, Any]:
    return REQUEST_MESSAGE


async def _discard(message: dict[str, Any]) -> None:
    pass


def asgi_case(app: ASGIApp, runner: asyncio.Runner) -> Case:
    """Starlette awaited as ASGI on ``runner``'s loop; its background tasks run before it returns."""

    def answer() -> tuple[int, bytes]:
        messages: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        runner.run(app(dict(SCOPE), _receive, send))
        [start] = [m for m in messages if m["type"] == "http.response.start"]
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        return start["status"], body

    async def many(requests: int) -> None:
        for _ in range(requests):
            await app(dict(SCOPE), _receive, _discard)  # a copy: the app writes into its scope

    return Case(call=answer, run=lambda requests: runner.run(many(requests)))


@dataclass(frozen=True)
class Mechanism:
    """A framework's post-response mechanism: its bare case, and ``build(tasks, task)``."""

    label: str
    bare: str
    build: Callable[[int, Task], Case]
    task: Task = peer_apps.noop
    tally: Callable[[], Tally] = Tally


def mechanisms(runner: asyncio.Runner) -> dict[str, Mechanism]:
    django = django_app.handler()

    def django_case(tasks: int, task: Task) -> Case:
        return wsgi_case(django, lambda: django_app.receivers(tasks, task))

    return {
        "pyramid_deferred": Mechanism(
            "pyramid_deferred `defer()`", "pyramid",
            lambda tasks, task: wsgi_case(peer_apps.pyramid_deferred(tasks, task)),
        ),
        "pyramid_finished_callback": Mechanism(
            "Pyramid `request.add_finished_callback`", "pyramid",
            lambda tasks, task: wsgi_case(peer_apps.pyramid_finished_callbacks(tasks, task)),
        ),
        "flask_call_on_close": Mechanism(
            "Flask `response.call_on_close`", "flask",
            lambda tasks, task: wsgi_case(peer_apps.flask(tasks, task)),
        ),
        "starlette_sync": Mechanism(
            "Starlette `BackgroundTasks` (sync task)", "starlette",
            lambda tasks, task: asgi_case(peer_apps.starlette(tasks, task), runner),
        ),
        "starlette_async": Mechanism(
            "Starlette `BackgroundTasks` (async task)", "starlette",
            lambda tasks, task: asgi_case(peer_apps.starlette(tasks, task), runner),
            peer_apps.async_noop, AsyncTally,
        ),
        "django_request_finished": Mechanism(
            "Django `request_finished`", "django", django_case,
        ),
    }


def bare_cases(runner: asyncio.Runner) -> dict[str, Case]:
    return {
        "pyramid": wsgi_case(peer_apps.pyramid_bare()),
        "flask": wsgi_case(peer_apps.flask(0)),
        "starlette": asgi_case(peer_apps.starlette(0), runner),
        "django": wsgi_case(django_app.handler()),
    }


def checked(name: str, case: Case, tally: Tally | None = None, tasks: int = 0) -> Case:
    """``case`` once it answered as the bare request does and ran its ``tasks`` before returning."""
    with case.armed():
        status, body = case.call()
    if status != 200 or body != BODY:
        raise RuntimeError(f"{name}: HTTP {status}, {len(body)} bytes; expected 200 and the bench body")
    if tally is not None and tally.calls != tasks:
        raise RuntimeError(f"{name}: {tally.calls} of its {tasks} task(s) ran by the time the call returned")
    return case


def build_cases(runner: asyncio.Runner) -> tuple[dict[str, dict[str, Case]], dict[str, Mechanism]]:
    """The cases by framework (its bare request first), each checked once with counting tasks."""
    by_mechanism = mechanisms(runner)
    groups = {bare: {bare: checked(bare, case)} for bare, case in bare_cases(runner).items()}
    for key, mechanism in by_mechanism.items():
        counts = (0, *TASK_COUNTS) if key == "pyramid_deferred" else TASK_COUNTS
        for tasks in counts:
            name = f"{key}.{tasks}"
            tally = mechanism.tally()
            checked(name, mechanism.build(tasks, tally), tally, tasks)
            groups[mechanism.bare][name] = mechanism.build(tasks, mechanism.task)
    return groups, by_mechanism


def requests_per_sample(case: Case, sample_seconds: float) -> int:
    """Warm the case up, then size its sample from a batch that lasted a tenth of a sample or more."""
    with case.armed():
        case.run(WARMUP_REQUESTS)
        requests = WARMUP_REQUESTS
        while True:
            started = time.perf_counter_ns()
            case.run(requests)
            elapsed = (time.perf_counter_ns() - started) / 1e9
            if elapsed >= sample_seconds / 10 or requests >= MAX_REQUESTS:
                break
            requests *= 2
    return max(MIN_REQUESTS, min(MAX_REQUESTS, round(sample_seconds * requests / elapsed)))


def interleaved_us(
    groups: dict[str, dict[str, Case]], *, rounds: int, sample_seconds: float, time_limit: float
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """µs per request of every case, one sample per round; stops early past ``time_limit`` s."""
    deadline = time.monotonic() + time_limit
    sizes = {name: requests_per_sample(case, sample_seconds) for group in groups.values()
             for name, case in group.items()}
    timings: dict[str, list[float]] = {name: [] for name in sizes}
    for round_ in range(rounds):
        if round_ >= MIN_ROUNDS and time.monotonic() > deadline:
            break
        for group in groups.values():
            names = list(group)
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                case, requests = group[name], sizes[name]
                with case.armed():
                    started = time.perf_counter_ns()
                    case.run(requests)
                    elapsed = time.perf_counter_ns() - started
                timings[name].append(elapsed / requests / 1000)
    return timings, sizes


def _row(mechanism: str, tasks: int, medians: dict[str, float], bare: str) -> dict[str, Any]:
    """The median request with ``tasks`` handed to ``mechanism`` against its framework's bare one."""
    with_, without = medians[f"{mechanism}.{tasks}"], medians[bare]
    return {
        "mechanism": mechanism, "tasks": tasks, "bare_us": round(without, 2), "with_us": round(with_, 2),
        "ratio": round(with_ / without, 3), "added_us": round(with_ - without, 2),
    }


def summarize(medians: dict[str, float], by_mechanism: dict[str, Mechanism]) -> dict[str, Any]:
    """One row per mechanism with one task (and the add-on's request deferring nothing first);
    per task at each count: (with n tasks - bare) / n."""
    rows = [_row("pyramid_deferred", 0, medians, "pyramid")]
    rows += [_row(key, 1, medians, mechanism.bare) for key, mechanism in by_mechanism.items()]
    per_task = {
        key: {str(n): round((medians[f"{key}.{n}"] - medians[mechanism.bare]) / n, 3) for n in TASK_COUNTS}
        for key, mechanism in by_mechanism.items()
    }
    labels = {key: mechanism.label for key, mechanism in by_mechanism.items()}
    return {"rows": rows, "per_task_us": per_task, "labels": labels}


def measure(*, rounds: int, sample_seconds: float, time_limit: float) -> dict[str, Any]:
    started = time.monotonic()
    logsetup.configure("WARNING")
    with asyncio.Runner() as runner:
        groups, by_mechanism = build_cases(runner)
        timings, sizes = interleaved_us(groups, rounds=rounds, sample_seconds=sample_seconds,
                                        time_limit=time_limit)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    return {
        "rounds": len(next(iter(timings.values()))),
        "rounds_planned": rounds,
        "sample_seconds": sample_seconds,
        "task_counts": list(TASK_COUNTS),
        **summarize(medians, by_mechanism),
        "cases": {
            name: {"requests_per_sample": sizes[name], "median_us": round(medians[name], 2),
                   "samples_us": [round(value, 2) for value in timings[name]]}
            for name in timings
        },
        "wall_seconds": round(time.monotonic() - started, 1),
    }

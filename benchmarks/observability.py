"""Issue 12: what seeing the runs costs, in process (WSGI calls), against the same app without it.

- **Tracing** (``pyramid_deferred.tracing``): requests deferring 1 and 10 no-op tasks through a
  bare Pyramid app with ``config.include("pyramid_deferred")``, three ways: tracing not included
  (off); included with no tracer provider (inert, as the example shop runs without OpenTelemetry
  configured); included with the OpenTelemetry SDK's ``TracerProvider``, a ``SimpleSpanProcessor``
  and an exporter that drops the spans (on: every span is built, ended and handed to the exporter in
  the request's thread). The per-task cost is the slope, ``(t(10 tasks) - t(1 task)) / 9``; the run
  span (once per request) is in the 1-task request's cost.
- **The dashboard** (``pyramid_deferred.dashboard``, the page enabled): the same app with and
  without it, for a request that defers nothing (the dashboard's tween only), one and ten no-op
  tasks (the tween notes the request line, the recorder keeps the run). Also what one poll of the
  page's ``data.json`` costs once its ring buffer is full.

Every case is timed in each sample, one after the other, in an order that rotates from sample to
sample, so they share the machine's noise; the figures are medians of the samples. The app's
own tracer provider is passed to the tracing observer, never set globally, so no other benchmark
in the process sees it. Console logging at WARNING (quiet): the add-on's own INFO line per run would
otherwise dominate what is measured. Clock: ``time.perf_counter_ns``; the garbage collector is on.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from pyramid.config import Configurator
from pyramid.request import Request as PyramidRequest
from pyramid.response import Response
from pyramid.router import Router
from pyramid_deferred.dashboard import get_dashboard
from pyramid_deferred.hook import get_hook
from pyramid_deferred.tracing.spans import TracingObserver
from webob import Request

from benchmarks import logsetup
from benchmarks.apps.pyramid_app import make_bare_app, none_view

TASKS = (1, 10)
DECLARED_COST = 1.0
NONE_PATH = "/bench/none"
DASHBOARD_DATA = "/_deferred/data.json"
DASHBOARD_SETTINGS = {"dashboard.require_token": "false"}
"""The page open (development): the guard's token check is not what is measured."""


def noop() -> None:
    pass


def tasks_path(count: int) -> str:
    return f"/bench/tasks_{count}"


class DroppingExporter(SpanExporter):
    """The SDK's export path, with nowhere to send the spans."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _deferring_view(count: int) -> Callable[[PyramidRequest], Response]:
    def view(request: PyramidRequest) -> Response:
        for _ in range(count):
            request.deferred_task.defer(noop, max_cost_seconds=DECLARED_COST, name="bench.noop")
        return none_view(request)

    return view


def _addon(*includes: str) -> Callable[[Configurator], None]:
    """The add-on with its default settings, the routes deferring 1 and 10 tasks, then ``includes``."""

    def extra(config: Configurator) -> None:
        config.include("pyramid_deferred")
        for count in TASKS:
            config.add_route(f"bench_tasks_{count}", tasks_path(count))
            config.add_view(_deferring_view(count), route_name=f"bench_tasks_{count}")
        for name in includes:
            config.include(name)

    return extra


def traced(app: Router, provider: TracerProvider) -> Router:
    """Point the app's tracing observer at ``provider`` (instead of the global one)."""
    observers = [o for o in get_hook(app.registry).observers if isinstance(o, TracingObserver)]
    if len(observers) != 1:
        raise RuntimeError(f"expected one TracingObserver on the app, found {len(observers)}")
    observers[0].tracer_provider = provider
    return app


def _call(app: Router, environ: dict[str, Any]) -> bytes:
    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], None]:
        return lambda data: None

    body = app(dict(environ), start_response)
    try:
        return b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()  # the add-on runs the tasks here (trigger "close"), inside the timed loop


Case = tuple[Router, dict[str, Any]]


def interleaved_us(cases: dict[str, Case], *, samples: int, requests: int) -> dict[str, list[float]]:
    """µs per request of each case, ``samples`` times; each sample times every case in turn."""
    for app, environ in cases.values():  # warm-up: routes, caches, the first runner prototype
        for _ in range(max(1, requests // 5)):
            _call(app, environ)
    names = list(cases)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for sample in range(samples):
        shift = sample % len(names)
        for name in names[shift:] + names[:shift]:
            app, environ = cases[name]
            started = time.perf_counter_ns()
            for _ in range(requests):
                _call(app, environ)
            timings[name].append((time.perf_counter_ns() - started) / requests / 1000)
    return timings


def _environ(path: str) -> dict[str, Any]:
    environ: dict[str, Any] = Request.blank(path).environ
    return environ


def _median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def tracing_cost(*, samples: int, requests: int) -> dict[str, Any]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DroppingExporter()))
    apps = {
        "off": make_bare_app(extra=_addon()),
        "inert": make_bare_app(extra=_addon("pyramid_deferred.tracing")),
        "on": traced(make_bare_app(extra=_addon("pyramid_deferred.tracing")), provider),
    }
    cases = {
        f"{mode}_{count}": (app, _environ(tasks_path(count))) for mode, app in apps.items() for count in TASKS
    }
    try:
        timings = interleaved_us(cases, samples=samples, requests=requests)
    finally:
        provider.shutdown()
    medians = {name: _median(values) for name, values in timings.items()}
    low, high = TASKS
    per_task_ns = {mode: (medians[f"{mode}_{high}"] - medians[f"{mode}_{low}"]) * 1000 / (high - low)
                   for mode in apps}
    return {
        "requests_per_sample": requests,
        "samples": samples,
        "exporter": "SimpleSpanProcessor + an exporter that drops the spans",
        "request_us": {name: round(value, 2) for name, value in medians.items()},
        "per_task_ns": {mode: round(value, 1) for mode, value in per_task_ns.items()},
        "per_task_ratio_on_off": round(per_task_ns["on"] / per_task_ns["off"], 2),
        "per_task_added_ns": round(per_task_ns["on"] - per_task_ns["off"], 1),
        "inert_added_us": {str(count): round(medians[f"inert_{count}"] - medians[f"off_{count}"], 2)
                           for count in TASKS},
        "on_added_us": {str(count): round(medians[f"on_{count}"] - medians[f"off_{count}"], 2)
                        for count in TASKS},
        "samples_us": {name: [round(value, 2) for value in values] for name, values in timings.items()},
    }


def dashboard_cost(*, samples: int, requests: int) -> dict[str, Any]:
    apps = {
        "off": make_bare_app(DASHBOARD_SETTINGS, extra=_addon()),
        "on": make_bare_app(DASHBOARD_SETTINGS, extra=_addon("pyramid_deferred.dashboard")),
    }
    paths = {"none": NONE_PATH, **{str(count): tasks_path(count) for count in TASKS}}
    cases = {
        f"{mode}_{what}": (app, _environ(path)) for mode, app in apps.items() for what, path in paths.items()
    }
    timings = interleaved_us(cases, samples=samples, requests=requests)
    medians = {name: _median(values) for name, values in timings.items()}
    # One poll of the page's data, its ring buffer full of the 10-task runs just timed.
    data = _environ(DASHBOARD_DATA)
    polls = max(5, requests // 10)
    poll_samples = []
    size = len(_call(apps["on"], data))
    for _ in range(samples):
        started = time.perf_counter_ns()
        for _ in range(polls):
            _call(apps["on"], data)
        poll_samples.append((time.perf_counter_ns() - started) / polls / 1000)
    return {
        "requests_per_sample": requests,
        "samples": samples,
        "request_us": {name: round(value, 2) for name, value in medians.items()},
        "added_us": {what: round(medians[f"on_{what}"] - medians[f"off_{what}"], 2) for what in paths},
        "ratio": {what: round(medians[f"on_{what}"] / medians[f"off_{what}"], 3) for what in paths},
        "poll_us": round(_median(poll_samples), 1),
        "poll_bytes": size,
        "poll_runs": len(get_dashboard(apps["on"].registry).recorder.snapshot()["runs"]),
        "samples_us": {name: [round(value, 2) for value in values] for name, values in timings.items()},
    }


def measure(*, samples: int, requests: int) -> dict[str, Any]:
    started = time.monotonic()
    logsetup.configure("WARNING")
    result: dict[str, Any] = {
        "tracing": tracing_cost(samples=samples, requests=requests),
        "dashboard": dashboard_cost(samples=samples, requests=requests),
    }
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    return result

"""Item 3: what the runner costs per task, and what the add-on costs every request.

- ``defer()`` + ``run()`` of no-op tasks (declared cost 1 s, default 10 s budget: nothing is
  skipped, nothing overruns), per task, for 1, 10, 100 and 10,000 tasks per runner, against the
  floor of a bare ``heapq`` push and pop of the same ``(-priority, sequence, task)`` tuples.
  Runner and floor samples alternate in the same loop, so they share the machine's noise.
- One request, in process (a WSGI call), through a bare Pyramid app (a ``Configurator`` with one
  route and its view: no container, no add-on, no app tweens), the honest baseline; the same app
  with ``config.include("pyramid_deferred")`` and its default settings, to the same view and to a
  view deferring one no-op task; the add-on's pieces added to the bare app one at a time; and the
  example shop app as the servers run it, for context.

Clock: ``time.perf_counter_ns`` (monotonic). The garbage collector stays on, as in production.
"""

from __future__ import annotations

import cProfile
import heapq
import itertools
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from pyramid.config import Configurator
from pyramid.events import NewResponse
from pyramid.request import Request as PyramidRequest
from pyramid.response import Response
from pyramid.router import Router
from pyramid.tweens import EXCVIEW, INGRESS
from pyramid_deferred.core import DeferredTask, DeferredTaskRunner
from pyramid_deferred.hook import HOOK_ATTR, DeferredTaskHook, get_hook
from pyramid_deferred.settings import load_deferred_task_settings
from pyramid_deferred.transactions import TM_TWEEN
from pyramid_deferred.tween import DEFERRED_TASK_TWEEN
from webob import Request

from benchmarks import logsetup
from benchmarks.apps.pyramid_app import make_app, make_bare_app, none_view, production_settings
from benchmarks.inprocess import call

TASK_COUNTS = (1, 10, 100, 10_000)
DECLARED_COST = 1.0
LOGGING_MODES = {"quiet": "WARNING", "production": "INFO"}
"""quiet: console at WARNING (runner's own cost); production: production.ini's console at INFO."""


def noop() -> None:
    pass


def runner_ns(count: int, loops: int) -> int:
    total = 0
    for _ in range(loops):
        runner = DeferredTaskRunner(budget_seconds=10.0, max_tasks=max(count, 1))
        started = time.perf_counter_ns()
        for _ in range(count):
            runner.defer(noop, max_cost_seconds=DECLARED_COST, name="bench.noop")
        runner.run()
        total += time.perf_counter_ns() - started
    return total


def floor_ns(count: int, loops: int) -> int:
    item = DeferredTask(noop, DECLARED_COST, DeferredTaskRunner.PRIORITY_NORMAL, "bench.noop")
    total = 0
    for _ in range(loops):
        queue: list[tuple[int, int, DeferredTask]] = []
        sequence = itertools.count()
        started = time.perf_counter_ns()
        for _ in range(count):
            heapq.heappush(queue, (-DeferredTaskRunner.PRIORITY_NORMAL, next(sequence), item))
        while queue:
            heapq.heappop(queue)
        total += time.perf_counter_ns() - started
    return total


def construction_ns(loops: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(loops):
        DeferredTaskRunner(budget_seconds=10.0)
    return (time.perf_counter_ns() - started) / loops


def per_task(*, samples: int, tasks_per_sample: int) -> list[dict[str, Any]]:
    rows = []
    for mode, level in LOGGING_MODES.items():
        logsetup.configure(level)
        for count in TASK_COUNTS:
            loops = max(1, tasks_per_sample // count)
            runner_samples, floor_samples = [], []
            runner_ns(count, max(1, loops // 10))  # warm-up
            for _ in range(samples):
                floor_samples.append(floor_ns(count, loops) / (loops * count))
                runner_samples.append(runner_ns(count, loops) / (loops * count))
            runner_med, floor_med = statistics.median(runner_samples), statistics.median(floor_samples)
            rows.append({
                "logging": mode,
                "tasks": count,
                "loops_per_sample": loops,
                "samples": samples,
                "runner_ns_per_task": round(runner_med, 1),
                "floor_ns_per_task": round(floor_med, 1),
                "ratio": round(runner_med / floor_med, 2),
                "runner_samples_ns": [round(value, 1) for value in runner_samples],
                "floor_samples_ns": [round(value, 1) for value in floor_samples],
            })
    return rows


def profile(count: int, loops: int, top: int = 12) -> list[dict[str, Any]]:
    """Where defer()+run() spends its time (quiet logging): own time per function, per task."""
    logsetup.configure(LOGGING_MODES["quiet"])
    profiler = cProfile.Profile()
    profiler.enable()
    runner_ns(count, loops)
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    rows = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return [
        {
            "function": f"{_short(filename)}:{line}({name})",
            "calls_per_task": round(entry[1] / (count * loops), 2),
            "own_share": round(entry[2] / total, 3),
        }
        for (filename, line, name), entry in rows
    ]


def _short(filename: str) -> str:
    for marker in ("/pyramid_deferred/", "/app/", "/loguru/", "/benchmarks/"):
        if marker in filename:
            return marker.strip("/") + "/" + filename.split(marker, 1)[1]
    return filename.rsplit("/", 1)[-1]


ONE_TASK_PATH = "/bench/one_task"


def one_task_view(request: PyramidRequest) -> Response:
    """``/bench/none``'s body, after deferring one no-op task (run once the body is delivered)."""
    request.deferred_task.defer(noop, max_cost_seconds=DECLARED_COST, name="bench.noop")
    return none_view(request)


def _include(config: Configurator) -> None:
    """The add-on with its default settings, plus a route whose view defers one no-op task."""
    config.include("pyramid_deferred")
    config.add_route("bench_one_task", ONE_TASK_PATH)
    config.add_view(one_task_view, route_name="bench_one_task")


def _hook_state(config: Configurator) -> None:
    """What the add-on's tweens and subscriber read (``get_hook``); costs a request nothing itself."""
    settings = load_deferred_task_settings(config.registry.settings)
    setattr(config.registry, HOOK_ATTR, DeferredTaskHook(settings))


def _tween_without_request_id(config: Configurator) -> None:
    config.registry.settings["deferred_task.request_id"] = "false"
    _hook_state(config)
    config.add_tween(DEFERRED_TASK_TWEEN, under=INGRESS, over=(TM_TWEEN, EXCVIEW))


def _tween_with_request_id(config: Configurator) -> None:
    _hook_state(config)
    config.add_tween(DEFERRED_TASK_TWEEN, under=INGRESS, over=(TM_TWEEN, EXCVIEW))


def _noop_subscriber_alone(config: Configurator) -> None:
    config.add_subscriber(lambda event: None, NewResponse)


def _reified_property_alone(config: Configurator) -> None:
    config.add_request_method(lambda request: None, "deferred_task", reify=True)


HOOK_STEPS: dict[str, Callable[[Configurator], None]] = {
    "tween_without_request_id": _tween_without_request_id,
    "tween_with_request_id": _tween_with_request_id,
}
"""The add-on's per-request path is one tween (no subscriber, no request property): with
``deferred_task.request_id = false``, then with the request id (its default). Its directives
and the uWSGI hook cost a request nothing. The last step is the add-on's request path whole."""

HOOK_MECHANISMS: dict[str, Callable[[Configurator], None]] = {
    "noop_newresponse_subscriber_alone": _noop_subscriber_alone,
    "reified_property_alone": _reified_property_alone,
}
"""Two Pyramid mechanisms alone on the bare app: any subscriber switches on all four per-request
events; any reified request property makes Pyramid build a subclass of the request per request."""


def _ratio(value: float, base: float) -> float:
    return round(value / base, 3)


def hook_cost(*, samples: int, requests: int) -> dict[str, Any]:
    """µs per in-process request: the bare Pyramid app vs the same app with the add-on included.

    Every case is timed in each sample, one after the other, so they share the machine's noise.
    """
    with tempfile.TemporaryDirectory() as log_dir:
        apps: dict[str, Router] = {"bare": make_bare_app(), "include": make_bare_app(extra=_include)}
        for name, part in {**HOOK_STEPS, **HOOK_MECHANISMS}.items():
            apps[name] = make_bare_app(extra=part)
        apps["example_app"] = make_app(production_settings(log_dir))
        none_environ = Request.blank("/bench/none").environ
        cases: dict[str, tuple[Router, dict[str, Any]]] = {
            name: (app, none_environ) for name, app in apps.items()
        }
        cases["include_one_task"] = (apps["include"], Request.blank(ONE_TASK_PATH).environ)
        logsetup.configure(LOGGING_MODES["production"])
        timings: dict[str, list[float]] = {name: [] for name in cases}
        for app, environ in cases.values():
            for _ in range(requests // 5):
                call(app, environ)
        for _ in range(samples):
            for name, (app, environ) in cases.items():
                started = time.perf_counter_ns()
                for _ in range(requests):
                    call(app, environ)
                timings[name].append((time.perf_counter_ns() - started) / requests / 1000)
        hook = get_hook(apps["include"].registry)
        hook.new_runner()
        loops = requests * 5
        started = time.perf_counter_ns()
        for _ in range(loops):
            hook.new_runner()
        new_runner_us = (time.perf_counter_ns() - started) / loops / 1000
    medians = {name: statistics.median(values) for name, values in timings.items()}
    bare, include, one_task = medians["bare"], medians["include"], medians["include_one_task"]
    return {
        "requests_per_sample": requests,
        "samples": samples,
        "bare_us": round(bare, 2),
        "include_us": round(include, 2),
        "one_task_us": round(one_task, 2),
        "example_app_us": round(medians["example_app"], 2),
        "include_added_us": round(include - bare, 2),
        "include_ratio": _ratio(include, bare),
        "one_task_added_us": round(one_task - bare, 2),
        "one_task_ratio": _ratio(one_task, bare),
        "one_task_over_include_us": round(one_task - include, 2),
        "example_app_ratio": _ratio(medians["example_app"], bare),
        "steps_added_us": {
            name: round(medians[name] - medians[previous], 2)
            for previous, name in itertools.pairwise(["bare", *HOOK_STEPS])
        },
        "steps_total_us": round(medians[list(HOOK_STEPS)[-1]] - bare, 2),
        "new_runner_us": round(new_runner_us, 2),
        "mechanisms_added_us": {name: round(medians[name] - bare, 2) for name in HOOK_MECHANISMS},
        "samples_us": {name: [round(value, 2) for value in values] for name, values in timings.items()},
    }


def measure(*, samples: int, tasks_per_sample: int, hook_requests: int) -> dict[str, Any]:
    started = time.monotonic()
    result = {
        "per_task": per_task(samples=samples, tasks_per_sample=tasks_per_sample),
        "runner_construction_ns": round(construction_ns(10_000), 1),
        "profile": {"1": profile(1, 20_000), "100": profile(100, 200)},
        "hook": hook_cost(samples=samples, requests=hook_requests),
    }
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    return result

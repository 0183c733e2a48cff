"""Item 3: what the runner costs per task, and what the hook costs every request.

- ``defer()`` + ``run()`` of no-op tasks (declared cost 1 s, default 10 s budget: nothing is
  skipped, nothing overruns), per task, for 1, 10, 100 and 10,000 tasks per runner, against the
  floor of a bare ``heapq`` push and pop of the same ``(-priority, sequence, task)`` tuples.
  Runner and floor samples alternate in the same loop, so they share the machine's noise.
- One request through the real app, in process (a WSGI call), to a view that defers nothing,
  with and without ``config.include("hooks")``.

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
from collections.abc import Callable, Iterable
from typing import Any

from pyramid.config import Configurator
from pyramid.events import NewResponse
from pyramid.tweens import INGRESS
from webob import Request

from app.deferred_task import DeferredTask, DeferredTaskRunner
from benchmarks import logsetup
from benchmarks.apps.pyramid_app import make_app, production_settings
from hooks.request_id import REQUEST_ID_TWEEN
from hooks.tween import attach_run_after_response, fresh_runner

TASK_COUNTS = (1, 10, 100, 10_000)
DECLARED_COST = 1.0
LOGGING_MODES = {"quiet": "WARNING", "production": "INFO"}
"""quiet: console at WARNING (runner's own cost); production: production.ini's console at INFO."""


def noop() -> None:
    pass


def runner_ns(count: int, loops: int) -> int:
    total = 0
    for _ in range(loops):
        runner = DeferredTaskRunner(budget_seconds=10.0)
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
    for marker in ("/app/", "/loguru/", "/benchmarks/"):
        if marker in filename:
            return marker.strip("/") + "/" + filename.split(marker, 1)[1]
    return filename.rsplit("/", 1)[-1]


def _call(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> None:
    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], None]:
        return lambda data: None

    body = app(dict(environ), start_response)
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def _request_id(config: Configurator) -> None:
    config.include("hooks.request_id")


def _plus_tween(config: Configurator) -> None:
    _request_id(config)
    config.add_tween("hooks.tween.deferred_task_tween_factory", under=(REQUEST_ID_TWEEN, INGRESS))


def _plus_subscriber(config: Configurator) -> None:
    _plus_tween(config)
    config.add_subscriber(attach_run_after_response, NewResponse)


def _noop_subscriber_alone(config: Configurator) -> None:
    config.add_subscriber(lambda event: None, NewResponse)


def _reified_property_alone(config: Configurator) -> None:
    config.add_request_method(lambda request: None, "deferred_task", reify=True)


HOOK_STEPS: dict[str, Callable[[Configurator], None]] = {
    "request_id": _request_id,
    "deferred_task_tween": _plus_tween,
    "newresponse_subscriber": _plus_subscriber,
}
"""The hook built up in the order ``hooks.includeme`` registers it: each step adds one piece."""

HOOK_MECHANISMS: dict[str, Callable[[Configurator], None]] = {
    "noop_newresponse_subscriber_alone": _noop_subscriber_alone,
    "reified_property_alone": _reified_property_alone,
}
"""Two Pyramid mechanisms alone on the bare app: any subscriber switches on all four per-request
events; any reified request property makes Pyramid build a subclass of the request per request."""


def hook_cost(*, samples: int, requests: int) -> dict[str, Any]:
    """µs per in-process request to ``/bench/none``: the real app vs the same app without the hook."""
    with tempfile.TemporaryDirectory() as log_dir:
        settings = production_settings(log_dir)
        apps = {"with_hook": make_app(settings, hook=True), "without_hook": make_app(settings, hook=False)}
        for name, part in {**HOOK_STEPS, **HOOK_MECHANISMS}.items():
            apps[name] = make_app(settings, hook=False, extra=part)
        logsetup.configure(LOGGING_MODES["production"])
        environ = Request.blank("/bench/none").environ
        timings: dict[str, list[float]] = {name: [] for name in apps}
        for app in apps.values():
            for _ in range(requests // 5):
                _call(app, environ)
        for _ in range(samples):
            for name, app in apps.items():
                started = time.perf_counter_ns()
                for _ in range(requests):
                    _call(app, environ)
                timings[name].append((time.perf_counter_ns() - started) / requests / 1000)
        container = apps["with_hook"].registry.container
        fresh_runner(container)
        loops = requests * 5
        started = time.perf_counter_ns()
        for _ in range(loops):
            fresh_runner(container)
        fresh_runner_us = (time.perf_counter_ns() - started) / loops / 1000
    medians = {name: statistics.median(values) for name, values in timings.items()}
    with_hook, without = medians["with_hook"], medians["without_hook"]
    return {
        "requests_per_sample": requests,
        "samples": samples,
        "with_hook_us": round(with_hook, 2),
        "without_hook_us": round(without, 2),
        "added_us": round(with_hook - without, 2),
        "ratio": round(with_hook / without, 3),
        "steps_added_us": {
            name: round(medians[name] - medians[previous], 2)
            for previous, name in itertools.pairwise(["without_hook", *HOOK_STEPS])
        },
        "fresh_runner_us": round(fresh_runner_us, 2),
        "mechanisms_added_us": {name: round(medians[name] - without, 2) for name in HOOK_MECHANISMS},
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

"""Items 1 and 2: client-observed latency to the complete body, each request sent to an idle server.

Every (app, server) pair gets its own server processes ("lanes"), measured side by side so that
the whole run fits in minutes although each deferring request keeps its server busy for 1 s:

- one lane alternates the deferring route and ``/bench/none`` on the same process, so the
  baseline shares its process and its moment of noise with the variant it is compared to;
- the naive variant (work in ``add_finished_callback``) has its own lane, because its
  response itself takes the 1 s.

A lane sends its next request only when its server is idle: the work's last task notifies the
lane over UDP, then the lane waits ``GRACE_SECONDS`` more. Every measured request, baseline or
not, follows at least ``MIN_IDLE_SECONDS`` of idleness: on this VM a request sent 10 ms after
the previous one is ~0.3 ms faster than one sent after 200 ms or more (warm caches, CPU not yet
in a sleep state), which would otherwise favour whichever variant comes second. A lock lets at most one fast
measured request be in flight on the whole machine at a time; the naive requests (1 s of sleep
each) are not under it.
"""

from __future__ import annotations

import contextlib
import functools
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.apps.work import TASK_COUNT, TASK_SECONDS, WORK_QUERY
from benchmarks.client import get
from benchmarks.servers import SERVER_LABELS, running
from benchmarks.stats import summarize_ms

GRACE_SECONDS = 0.02
MIN_IDLE_SECONDS = 0.25
NOTIFY_TIMEOUT = 30.0

PATHS = {
    "none": "/bench/none",
    "naive": "/bench/naive",
    "runner": "/bench/runner",
    "call_on_close": "/bench/defer",
    "background": "/bench/defer",
}

VARIANT_LABELS = {
    "none": "no tasks",
    "naive": "naive: request.add_finished_callback",
    "runner": "this runner: request.deferred_task.defer()",
    "call_on_close": "Flask: response.call_on_close",
    "background": "Starlette: BackgroundTasks",
}


@dataclass(frozen=True, slots=True)
class Lane:
    app: str
    server: str
    variants: tuple[str, ...]


LANES = (
    Lane("pyramid", "gunicorn-sync", ("runner", "none")),
    Lane("pyramid", "gunicorn-sync", ("naive",)),
    Lane("pyramid", "gunicorn-gthread", ("runner", "none")),
    Lane("pyramid", "gunicorn-gthread", ("naive",)),
    Lane("pyramid", "waitress", ("runner", "none")),
    Lane("pyramid", "waitress", ("naive",)),
    Lane("flask", "gunicorn-sync", ("call_on_close", "none")),
    Lane("starlette", "uvicorn", ("background", "none")),
)


@dataclass
class LaneResult:
    lane: Lane
    samples: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None


def _wait_for_work(udp: socket.socket, request_id: str, deadline: float) -> None:
    while True:
        udp.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = udp.recv(64)
        except TimeoutError:
            raise TimeoutError(f"the work of request {request_id} did not finish in time") from None
        if data.decode("ascii") == request_id:
            time.sleep(GRACE_SECONDS)
            return


def _measure_lane(
    lane: Lane, port: int, *, requests: int, warmup: int, lock: threading.Lock,
    stop: threading.Event, deadline: float, result: LaneResult,
) -> None:
    result.samples = {variant: [] for variant in lane.variants}
    jitter = random.Random(f"{lane.app}-{lane.server}-{lane.variants}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp_port = udp.getsockname()[1]
        idle_since = time.monotonic()
        for index in range(warmup + requests):
            for variant in lane.variants:
                if stop.is_set() or time.monotonic() > deadline:
                    return
                # At least MIN_IDLE_SECONDS idle, plus jitter that keeps the lanes out of step.
                idle_left = idle_since + MIN_IDLE_SECONDS - time.monotonic()
                time.sleep(max(0.0, idle_left) + jitter.uniform(0, 0.02))
                request_id = f"{index}-{variant}"
                path = PATHS[variant]
                if variant != "none":
                    path += f"?{WORK_QUERY}&notify={udp_port}&id={request_id}"
                with lock if variant != "naive" else contextlib.nullcontext():
                    reply = get(port, path)
                if reply.status != 200:
                    raise RuntimeError(f"{lane.server} {path}: HTTP {reply.status}")
                if variant != "none":
                    _wait_for_work(udp, request_id, time.monotonic() + NOTIFY_TIMEOUT)
                idle_since = time.monotonic()
                if index >= warmup:
                    result.samples[variant].append(reply.seconds)


def _run_thread(target: Callable[[], None], result: LaneResult, stop: threading.Event) -> threading.Thread:
    def guarded() -> None:
        try:
            target()
        except Exception as error:
            result.error = f"{type(error).__name__}: {error}"
            stop.set()

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    return thread


def measure(*, requests: int, warmup: int, log_dir: Path, time_limit: float) -> dict[str, Any]:
    """Start every lane's server, measure all lanes side by side, stop every server."""
    results = [LaneResult(lane) for lane in LANES]
    lock, stop = threading.Lock(), threading.Event()
    started = time.monotonic()
    with contextlib.ExitStack() as servers:
        ports = [servers.enter_context(running(lane.server, lane.app, log_dir)).port for lane in LANES]
        deadline = time.monotonic() + time_limit
        threads = [
            _run_thread(
                functools.partial(
                    _measure_lane, lane, port, requests=requests, warmup=warmup, lock=lock, stop=stop,
                    deadline=deadline, result=result,
                ),
                result, stop,
            )
            for lane, port, result in zip(LANES, ports, results, strict=True)
        ]
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.5)
        finally:
            stop.set()
    errors = [f"{r.lane.app}/{r.lane.server}: {r.error}" for r in results if r.error]
    if errors:
        raise RuntimeError("latency lanes failed: " + "; ".join(errors))
    return {
        "requests_per_variant": requests,
        "warmup_per_variant": warmup,
        "work": {"tasks": TASK_COUNT, "task_seconds": TASK_SECONDS},
        "wall_seconds": round(time.monotonic() - started, 1),
        "series": [_series(result) for result in results],
    }


def _series(result: LaneResult) -> dict[str, Any]:
    lane = result.lane
    return {
        "app": lane.app,
        "server": lane.server,
        "server_label": SERVER_LABELS[lane.server],
        "variants": {
            variant: {
                "label": VARIANT_LABELS[variant],
                **summarize_ms(samples),
                "samples_ms": [round(seconds * 1000, 4) for seconds in samples],
            }
            for variant, samples in result.samples.items()
        },
    }

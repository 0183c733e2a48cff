"""Item 4: throughput and isolation under bounded load, on gunicorn gthread and waitress.

For each server (one process, 4 threads) and 4 or 16 concurrent keep-alive clients (a separate
load process, :mod:`benchmarks.loadgen`), with and without deferred work (the same 5 x 200 ms
through this runner): requests per second and the load clients' latency. Meanwhile a *probe*
in this process, another client on fresh connections, starts a request for ``/bench/none``
every ``PROBE_INTERVAL`` seconds whether or not the previous one has returned (open loop, so
slow answers are not under-sampled): its latency is how much a busy pool delays everyone else.

With deferred work, "requests per second" counts responses; "served per second" counts
requests whose deferred work has also finished, until the last one has: the rate the pool
can sustain.

Issue 13's lane (:func:`concurrency_lane`): on the same servers, the same 5 x 200 ms deferred one
after the other (``/bench/runner``) and with ``concurrent=True`` (``/bench/concurrent``: side by
side on the add-on's pool, ``deferred_task.concurrent_threads`` = 8), measured in one run: the
*batch* time (from a response's arrival to its work's end: how long the request's thread stays
busy after the response), first one request at a time on an idle server, then under the same
bounded load with the probe.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.apps.work import TASK_COUNT, TASK_SECONDS, WORK_QUERY
from benchmarks.client import get
from benchmarks.servers import ROOT, SERVER_LABELS, running
from benchmarks.stats import summarize_ms

SERVERS = ("gunicorn-gthread", "waitress")
CONCURRENCY = (4, 16)
PROBE_INTERVAL = 0.1
PROBE_MAX = 600
LANE_PATHS = {"sequential": "/bench/runner", "concurrent": "/bench/concurrent"}
IDLE_GAP_SECONDS = 0.25
NOTIFY_TIMEOUT = 30.0


def _probe_once(port: int, samples: list[float], errors: list[str]) -> None:
    try:
        samples.append(get(port, "/bench/none", timeout=30).seconds)
    except OSError as error:
        errors.append(f"{type(error).__name__}: {error}")


def _probe(port: int, stop: threading.Event, samples: list[float], errors: list[str]) -> None:
    """Open loop: one request every PROBE_INTERVAL, each in its own short-lived thread."""
    started: list[threading.Thread] = []
    while not stop.is_set() and len(started) < PROBE_MAX:
        thread = threading.Thread(target=_probe_once, args=(port, samples, errors), daemon=True)
        thread.start()
        started.append(thread)
        stop.wait(PROBE_INTERVAL)
    for thread in started:
        thread.join(timeout=31)


def _condition(
    port: int, *, clients: int, work: bool, requests: int, seconds: float, path: str = "/bench/runner"
) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "benchmarks.loadgen", "--port", str(port),
        "--path", path if work else "/bench/none",
        "--clients", str(clients), "--requests", str(requests), "--seconds", str(seconds),
    ]
    if work:
        argv.append("--notify")
    probe_samples: list[float] = []
    probe_errors: list[str] = []
    stop = threading.Event()
    probe = threading.Thread(target=_probe, args=(port, stop, probe_samples, probe_errors), daemon=True)
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    watchdog = threading.Timer(seconds + 120, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        lines = iter(process.stdout.readline, "")
        if next(lines, "").strip() != "STARTED":
            raise RuntimeError("load generator did not start")
        probe.start()
        if next(lines, "").strip() != "LOADED":
            raise RuntimeError("load generator did not finish its load")
        stop.set()
        result: dict[str, Any] = json.loads(next(lines, "{}"))
        process.wait(timeout=60)
    finally:
        stop.set()
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    probe.join(timeout=35)
    drained = result.get("work_drained_seconds")
    return {
        **result,
        "served_per_second": round(result["completed"] / drained, 2) if work and drained else None,
        "work": work,
        "probe_ms": summarize_ms(probe_samples),
        "probe_errors": len(probe_errors),
    }


def _idle_batches(port: int, path: str, requests: int) -> list[float]:
    """One request at a time, each after its predecessor's work ended: seconds from the response's
    arrival to its work's report over UDP."""
    batches = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp_port = udp.getsockname()[1]
        for index in range(requests):
            time.sleep(IDLE_GAP_SECONDS)
            request_id = f"idle-{index}"
            reply = get(port, f"{path}?{WORK_QUERY}&notify={udp_port}&id={request_id}")
            responded = time.perf_counter()
            if reply.status != 200:
                raise RuntimeError(f"{path}: HTTP {reply.status}")
            deadline = responded + NOTIFY_TIMEOUT
            while True:
                udp.settimeout(max(0.01, deadline - time.perf_counter()))
                try:
                    if udp.recv(64).decode("ascii") == request_id:
                        break
                except TimeoutError:
                    raise TimeoutError(f"the work of {path} did not finish in time") from None
            batches.append(time.perf_counter() - responded)
    return batches


def concurrency_lane(*, idle_requests: int, load_requests: int, log_dir: Path) -> dict[str, Any]:
    """Sequential vs ``concurrent=True``, side by side on each server: idle batch time, then load."""
    started = time.monotonic()
    rows = []
    for server in SERVERS:
        with running(server, "pyramid", log_dir) as running_server:
            port = running_server.port
            for mode, path in LANE_PATHS.items():
                rows.append({
                    "server": server, "server_label": SERVER_LABELS[server], "mode": mode, "clients": 1,
                    "idle": True, "batch_ms": summarize_ms(_idle_batches(port, path, idle_requests)),
                })
            for clients in CONCURRENCY:
                for mode, path in LANE_PATHS.items():
                    row = _condition(
                        port, clients=clients, work=True, requests=load_requests, seconds=120, path=path
                    )
                    rows.append({
                        "server": server, "server_label": SERVER_LABELS[server], "mode": mode, "idle": False,
                        **row,
                    })
                    time.sleep(0.3)
    return {
        "tasks": TASK_COUNT,
        "task_seconds": TASK_SECONDS,
        "idle_requests": idle_requests,
        "load_requests": load_requests,
        "wall_seconds": round(time.monotonic() - started, 1),
        "rows": rows,
    }


def measure(
    *, work_requests: int, plain_requests: int, plain_seconds: float, log_dir: Path, lane_idle_requests: int,
) -> dict[str, Any]:
    started = time.monotonic()
    rows = []
    for server in SERVERS:
        with running(server, "pyramid", log_dir) as running_server:
            for clients in CONCURRENCY:
                for work in (False, True):
                    row = _condition(
                        running_server.port, clients=clients, work=work,
                        requests=work_requests if work else plain_requests,
                        seconds=120 if work else plain_seconds,
                    )
                    rows.append({"server": server, "server_label": SERVER_LABELS[server], **row})
                    time.sleep(0.3)
    lane = concurrency_lane(idle_requests=lane_idle_requests, load_requests=work_requests, log_dir=log_dir)
    return {
        "probe_interval_seconds": PROBE_INTERVAL,
        "work_requests": work_requests,
        "plain_requests_max": plain_requests,
        "plain_seconds": plain_seconds,
        "wall_seconds": round(time.monotonic() - started, 1),
        "conditions": rows,
        "concurrency": lane,
    }

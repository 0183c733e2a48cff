"""Prometheus metrics, opt-in: ``config.include("pyramid_deferred.metrics")`` after
``config.include("pyramid_deferred")`` (and ``pip install pyramid-deferred[prometheus]``).

Every request's run feeds the app's own registry (not prometheus-client's global one, so two
apps in a process never add to each other's counters); ``GET <metrics.path>`` serves it. When
``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn with several workers), the endpoint aggregates
every worker's values from that directory. With ``metrics.token`` set, a scrape must send it, as
a Bearer token or as the password of HTTP basic auth (Prometheus's ``authorization`` or
``basic_auth`` in its scrape config): 401 without credentials, 403 with wrong ones.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from pyramid.config import Configurator
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response

from pyramid_deferred.batch import RequestBatch
from pyramid_deferred.core import RunReport
from pyramid_deferred.hook import get_hook
from pyramid_deferred.metrics.collector import MULTIPROC_DIR_ENV, DeferredTaskMetrics, exposition
from pyramid_deferred.settings import load, setting
from pyramid_deferred.values import ConfigError, parse_token, parse_url_path

METRICS_ROUTE = "deferred_task_metrics"
METRICS_ATTR = "deferred_task_metrics"


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    path: str = setting(
        key="metrics.path", env="APP_METRICS_PATH", parse=parse_url_path, default="/metrics",
        doc="Where Prometheus scrapes (with `pyramid_deferred.metrics` included). It shows task "
        "names (and the app's counts): set `metrics.token`, or expose it only to the scraper.",
    )
    token: str = setting(
        key="metrics.token", env="APP_METRICS_TOKEN", parse=parse_token, default="", secret=True,
        doc="A token every scrape must send, as `Authorization: Bearer <token>` or as the password of "
        "HTTP basic auth (any user name): 401 without credentials, 403 with wrong ones. Empty: the "
        "endpoint is open to whoever reaches it (docs/metrics.md says where to expose it then).",
    )


class MetricsObserver:
    """The report observer (``config.add_deferred_task_observer``) that feeds the metrics."""

    def __init__(self, metrics: DeferredTaskMetrics) -> None:
        self.metrics = metrics

    def __call__(self, batch: RequestBatch, report: RunReport) -> None:
        self.metrics.observe(report)

    def __repr__(self) -> str:
        return "MetricsObserver()"


class MetricsView:
    """``GET <path>``: what Prometheus scrapes, behind the token when one is set."""

    def __init__(self, metrics: DeferredTaskMetrics, multiprocess_dir: str | None, token: str = "") -> None:
        self.metrics = metrics
        self.multiprocess_dir = multiprocess_dir
        self._token = token.encode()

    def __repr__(self) -> str:
        return f"MetricsView(protected={bool(self._token)})"

    def __call__(self, request: Request) -> Response:
        if self._token:
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
        accept = request.headers.get("Accept")
        body, content_type = exposition(self.metrics.registry, accept, self.multiprocess_dir)
        response = Response(body=body)
        response.headers["Content-Type"] = content_type
        response.cache_control = "no-store"
        return response

    def _refusal(self, request: Request) -> Response | None:
        """None when the request carries the token; else 401 (no credentials) or 403 (wrong ones)."""
        presented = scraped_token(str(request.headers.get("Authorization", "")))
        if presented is None:
            response = Response("the metrics need a token", status=401, content_type="text/plain")
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics", Basic realm="metrics"'
        elif presented and hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), self._token):
            return None
        else:
            response = Response("wrong metrics token", status=403, content_type="text/plain")
        response.cache_control = "no-store"
        return response


def scraped_token(authorization: str) -> str | None:
    """The token of ``Authorization: Bearer <token>`` or the password of ``Basic <user:token>``
    (possibly empty); None when the header carries neither."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""  # malformed basic credentials: a wrong token
    return decoded.partition(":")[2]


def get_metrics(registry: Registry) -> DeferredTaskMetrics:
    """The app's metrics (for a test, or to add the app's own collectors to its registry)."""
    metrics: DeferredTaskMetrics | None = getattr(registry, METRICS_ATTR, None)
    if metrics is None:
        raise LookupError('metrics are not set up: config.include("pyramid_deferred.metrics")')
    return metrics


def check_multiprocess_dir(raw: str) -> None:
    """prometheus-client writes every worker's values there: otherwise the first metric created
    fails with a FileNotFoundError naming a .db file, or (empty value) writes into the cwd."""
    if not raw.strip() or not os.path.isdir(raw) or not os.access(raw, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{MULTIPROC_DIR_ENV}={raw!r} is not a writable directory; allowed: an existing directory "
            "(emptied at each deploy), or leave it unset for a single process"
        )


def includeme(config: Configurator) -> None:
    settings = load(MetricsSettings, config.registry.settings)
    multiprocess_dir = os.environ.get(MULTIPROC_DIR_ENV)
    if multiprocess_dir is not None:
        check_multiprocess_dir(multiprocess_dir)
    metrics = DeferredTaskMetrics(CollectorRegistry(auto_describe=True))
    setattr(config.registry, METRICS_ATTR, metrics)
    config.add_deferred_task_observer(MetricsObserver(metrics))
    config.add_route(METRICS_ROUTE, settings.path)
    config.add_view(MetricsView(metrics, multiprocess_dir or None, settings.token), route_name=METRICS_ROUTE,
                    request_method="GET")

    def watch_handoff_queue() -> None:
        hook = get_hook(config.registry)
        hook.worker.add_queue_listener(metrics.set_handoff_queue_length)
        hook.watchdog.listeners.append(metrics.set_running_past_cost)
        if hook.spill_over is not None:
            hook.spill_over.listeners.append(
                lambda task, taken: metrics.observe_spill(task.name, task.reason, taken)
            )

    config.action(None, watch_handoff_queue)

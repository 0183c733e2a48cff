"""A live page of what the runner did in this process, opt-in:
``config.include("pyramid_deferred.dashboard")`` after ``config.include("pyramid_deferred")``.

``GET <dashboard.path>`` (``/_deferred``) shows the latest requests' tasks on a timeline that
starts when the response left the app, per task name the counts by outcome and the measured
p50/p99 against the declared cost, the hand-off queue, and panels the app adds
(``config.add_deferred_dashboard_panel(title, rows)``); the page polls
``<path>/data.json`` while it is open.

One process: each worker keeps its own runs in memory (bounded), and the page names the pid it
shows. Access: with ``dashboard.token`` set, the token must come as the ``X-Dashboard-Token``
header (or ``Authorization: Bearer``), or as the cookie the page's form sets; never in a URL.
Without a token the page is open, which only ``dashboard.require_token = false`` allows (for
development): by default the include refuses to start without one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from importlib.resources import files
from typing import Any

from pyramid.config import Configurator
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response
from pyramid.tweens import EXCVIEW

from pyramid_deferred.batch import BATCH_ATTR, RequestBatch
from pyramid_deferred.core import RunReport
from pyramid_deferred.core.log import deferred_task_logger
from pyramid_deferred.dashboard.recorder import REQUEST_NOTE, STATUS_NOTE, Recorder
from pyramid_deferred.hook import get_hook
from pyramid_deferred.settings import load, setting
from pyramid_deferred.tween import DEFERRED_TASK_TWEEN
from pyramid_deferred.values import ConfigError, int_parser, parse_bool, parse_token, parse_url_path

DASHBOARD_ATTR = "deferred_task_dashboard"
PAGE_ROUTE = "deferred_task_dashboard"
DATA_ROUTE = "deferred_task_dashboard_data"
ASSET_ROUTE = "deferred_task_dashboard_asset"
DASHBOARD_TWEEN = "pyramid_deferred.dashboard.request_line_tween_factory"
TOKEN_HEADER = "X-Dashboard-Token"
COOKIE_NAME = "deferred_dashboard"
COOKIE_CONTEXT = b"pyramid-deferred dashboard cookie"
MAX_REQUEST_LINE = 200
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
}

PanelRows = Callable[[Request], Sequence[Mapping[str, object]]]
"""An extension panel's rows: each a mapping of column to a str, number, bool or None."""


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    path: str = setting(
        key="dashboard.path", env="APP_DASHBOARD_PATH", parse=parse_url_path, default="/_deferred",
        doc="Where the live page is (with `pyramid_deferred.dashboard` included); its data at "
        "`<path>/data.json`.",
    )
    token: str = setting(
        key="dashboard.token", env="APP_DASHBOARD_TOKEN", parse=parse_token, default="",
        doc="The page's access token (a secret: put it in the environment, not the .ini file); sent as "
        "the `X-Dashboard-Token` header, or typed into the page's form (a cookie). Never in a URL.",
    )
    require_token: bool = setting(
        key="dashboard.require_token", env="APP_DASHBOARD_REQUIRE_TOKEN", parse=parse_bool, default=True,
        doc="Refuse to start the dashboard without `dashboard.token`; false only for development, where "
        "the page is then open to anyone who reaches the server.",
    )
    recent_runs: int = setting(
        key="dashboard.recent_runs", env="APP_DASHBOARD_RECENT_RUNS",
        parse=int_parser(minimum=1, maximum=10_000), default=50,
        doc="Latest runs (requests that deferred something) the page shows; older ones are dropped.",
    )
    max_task_names: int = setting(
        key="dashboard.max_task_names", env="APP_DASHBOARD_MAX_TASK_NAMES",
        parse=int_parser(minimum=1, maximum=100_000), default=200,
        doc="Task names with statistics; past it the name seen least recently is dropped (bounds memory).",
    )


def _safe_text(text: str) -> str:
    """One printable line, at most ``MAX_REQUEST_LINE`` characters (it is shown, never parsed)."""
    clean = "".join(c if c.isprintable() else "\ufffd" for c in text)
    return clean if len(clean) <= MAX_REQUEST_LINE else clean[: MAX_REQUEST_LINE - 1] + "…"


def request_line(environ: Mapping[str, Any]) -> str:
    """Method and path as the client sent them (no query string: it may hold anything)."""
    raw = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    try:  # WSGI gives the path as latin-1 text of the raw bytes
        path = raw.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        path = raw
    return _safe_text(f"{environ.get('REQUEST_METHOD', '?')} {path}")


class Guard:
    """Who may see the page: everyone without a token (development), else the token's holders."""

    def __init__(self, token: str) -> None:
        self.token = token.encode()
        self.cookie_value = hmac.new(self.token, COOKIE_CONTEXT, hashlib.sha256).hexdigest() if token else ""

    @property
    def open(self) -> bool:
        return not self.token

    def token_matches(self, given: str | None) -> bool:
        if given is None or not self.token:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self.token)

    def allows(self, request: Request) -> bool:
        if self.open:
            return True
        header = request.headers.get(TOKEN_HEADER)
        authorization = request.headers.get("Authorization", "")
        if header is None and authorization[:7].lower() == "bearer ":
            header = authorization[7:].strip()
        if self.token_matches(header):
            return True
        cookie = request.cookies.get(COOKIE_NAME)
        if cookie is None:
            return False
        return hmac.compare_digest(cookie.encode("utf-8", "surrogatepass"), self.cookie_value.encode())


class Dashboard:
    """The app's dashboard: settings, recorder, access guard, panels."""

    def __init__(self, settings: DashboardSettings) -> None:
        self.settings = settings
        self.base = settings.path.rstrip("/")
        self.recorder = Recorder(recent_runs=settings.recent_runs, max_task_names=settings.max_task_names)
        self.guard = Guard(settings.token)
        self.panels: list[tuple[str, PanelRows]] = []
        self.started_at = time.time()
        package = files("pyramid_deferred.dashboard") / "static"
        self.page = (package / "dashboard.html").read_text(encoding="utf-8")
        self.login = (package / "login.html").read_text(encoding="utf-8")
        self.assets = {name: (package / name).read_bytes() for name in ASSETS}

    @property
    def page_url(self) -> str:
        return self.base or "/"

    def observe(self, batch: RequestBatch, report: RunReport) -> None:
        self.recorder.observe(batch, report)

    def data(self, request: Request) -> dict[str, Any]:
        hook = get_hook(request.registry)
        settings = hook.settings
        return {
            "pid": os.getpid(),
            "process_started_at": self.started_at,
            "generated_at": time.time(),
            "shared": False,
            "scope": f"This page shows worker process {os.getpid()} only: each process keeps its own "
            "recent runs in memory (no shared state). With several workers, each poll may reach "
            "another one; use the metrics endpoint for totals.",
            "settings": {"budget_seconds": settings.budget_seconds, "strategy": settings.strategy,
                         "enabled": settings.enabled},
            "queue": {"length": hook.worker.queue_length, "capacity": settings.worker_queue_size,
                      "busy_threads": hook.worker.busy_threads, "threads": settings.worker_threads},
            **self.recorder.snapshot(),
            "panels": [self._panel(title, rows, request) for title, rows in self.panels],
        }

    @staticmethod
    def _panel(title: str, rows: PanelRows, request: Request) -> dict[str, Any]:
        try:
            data = [{str(k): _json_value(v) for k, v in row.items()} for row in rows(request)]
        except Exception:
            deferred_task_logger.opt(exception=True).error("Dashboard panel {!r} failed", title)
            return {"title": title, "rows": [], "error": "unavailable (the error is logged)"}
        return {"title": title, "rows": data, "error": None}


def _json_value(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def get_dashboard(registry: Registry) -> Dashboard:
    dashboard: Dashboard | None = getattr(registry, DASHBOARD_ATTR, None)
    if dashboard is None:
        raise LookupError('the dashboard is not set up: config.include("pyramid_deferred.dashboard")')
    return dashboard


def dashboard_url(registry: Registry) -> str | None:
    """The page's path where the app included the dashboard (for a link to it), else None."""
    dashboard: Dashboard | None = getattr(registry, DASHBOARD_ATTR, None)
    return dashboard.page_url if dashboard is not None else None


def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _forbidden(dashboard: Dashboard, message: str) -> Response:
    body = dashboard.login.replace("{{path}}", escape(dashboard.page_url))
    body = body.replace("{{message}}", escape(message))
    return _secure(Response(body, status=403, content_type="text/html", charset="utf-8"))


def page_view(request: Request) -> Response:
    dashboard = get_dashboard(request.registry)
    if not dashboard.guard.allows(request):
        return _forbidden(dashboard, "This page needs the dashboard token.")
    body = dashboard.page.replace("{{base}}", escape(dashboard.base))
    return _secure(Response(body, content_type="text/html", charset="utf-8"))


def login_view(request: Request) -> Response:
    """The page's form posts the token here; a match sets the cookie and goes back to the page."""
    dashboard = get_dashboard(request.registry)
    try:
        given = request.POST.get("token")
    except Exception:  # a body WebOb cannot parse is a wrong token, never a 500
        given = None
    if dashboard.guard.open or not isinstance(given, str) or not dashboard.guard.token_matches(given.strip()):
        return _forbidden(dashboard, "Wrong token.")
    response = Response(status=303, location=dashboard.page_url)
    response.set_cookie(
        COOKIE_NAME, dashboard.guard.cookie_value, path=dashboard.page_url, httponly=True,
        samesite="Strict", secure=request.scheme == "https",
    )
    return _secure(response)


def data_view(request: Request) -> Response:
    dashboard = get_dashboard(request.registry)
    if not dashboard.guard.allows(request):
        return _secure(Response(json.dumps({"error": "forbidden"}), status=403,
                                content_type="application/json", charset="utf-8"))
    body = json.dumps(dashboard.data(request), allow_nan=False, default=str)
    return _secure(Response(body, content_type="application/json", charset="utf-8"))


def asset_view(request: Request) -> Response:
    """The page's script and style sheet: no data in them, served to anyone."""
    dashboard = get_dashboard(request.registry)
    name = request.matchdict["name"]
    content_type = ASSETS.get(name)
    if content_type is None:
        return _secure(Response("Not Found", status=404, content_type="text/plain"))
    return _secure(Response(dashboard.assets[name], content_type=content_type, charset="utf-8"))


def request_line_tween_factory(
    handler: Callable[[Request], Response], registry: Registry
) -> Callable[[Request], Response]:
    """Notes the request line and status on the batch of a request that deferred something."""

    def request_line_tween(request: Request) -> Response:
        response = None
        try:
            response = handler(request)
            return response
        finally:
            batch: RequestBatch | None = getattr(request, BATCH_ATTR, None)
            if batch is not None:
                batch.notes[REQUEST_NOTE] = request_line(request.environ)
                if response is not None:
                    batch.notes[STATUS_NOTE] = response.status_int

    return request_line_tween


def add_deferred_dashboard_panel(config: Configurator, title: str, rows: PanelRows) -> None:
    """Directive ``config.add_deferred_dashboard_panel(title, rows)``: ``rows(request)`` returns the
    panel's table, one mapping per row; called on each poll (keep it fast), escaped when shown."""
    if not callable(rows):
        raise TypeError(f"rows must be callable, got {type(rows).__name__}")
    get_dashboard(config.registry).panels.append((str(title), rows))


def includeme(config: Configurator) -> None:
    settings = load(DashboardSettings, config.registry.settings)
    if settings.require_token and not settings.token:
        raise ConfigError(
            "APP_DASHBOARD_TOKEN (dashboard.token) is not set, and the dashboard requires a token; "
            "allowed: a token of 16 to 512 characters, or dashboard.require_token = false in development"
        )
    dashboard = Dashboard(settings)
    setattr(config.registry, DASHBOARD_ATTR, dashboard)
    config.add_directive("add_deferred_dashboard_panel", add_deferred_dashboard_panel)
    config.add_deferred_task_observer(dashboard.observe)
    config.add_tween(DASHBOARD_TWEEN, under=DEFERRED_TASK_TWEEN, over=EXCVIEW)
    base = dashboard.base
    config.add_route(PAGE_ROUTE, dashboard.page_url)
    config.add_route(DATA_ROUTE, f"{base}/data.json")
    config.add_route(ASSET_ROUTE, f"{base}/assets/{{name}}")
    config.add_view(page_view, route_name=PAGE_ROUTE, request_method=("GET", "HEAD"))
    config.add_view(login_view, route_name=PAGE_ROUTE, request_method="POST")
    config.add_view(data_view, route_name=DATA_ROUTE, request_method=("GET", "HEAD"))
    config.add_view(asset_view, route_name=ASSET_ROUTE, request_method=("GET", "HEAD"))

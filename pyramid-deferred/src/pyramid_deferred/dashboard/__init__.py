"""A live page of what the runner did, opt-in:
``config.include("pyramid_deferred.dashboard")`` after ``config.include("pyramid_deferred")``.

``GET <dashboard.path>`` (``/_deferred``) shows the latest requests' tasks on a timeline that
starts when the response left the app, per task name the counts by outcome and the measured
p50/p99 against the declared cost, the hand-off queue, and panels the app adds
(``config.add_deferred_dashboard_panel(title, rows)``); the page polls
``<path>/data.json`` while it is open.

Every worker, with Redis: once a Redis URL is set (``dashboard.redis_url``, else the broker's
``deferred_task.broker_url``), each process publishes its runs and statistics there from a
background thread, and the page shows them merged, with each run's pid (``sharing.py``). Without
one, each process keeps its own runs in memory (bounded), and the page says it shows one pid.

Access (``access.py``): with ``dashboard.token`` set, the token must come as the
``X-Dashboard-Token`` header (or ``Authorization: Bearer``), or be typed into the page's form,
which logs the browser in with an expiring cookie (``POST <path>/logout`` ends it); never in a URL.
Wrong tokens are throttled per client address and overall (429). Without a token the page is
open, which only ``dashboard.require_token = false`` allows (for development): by default the
include refuses to start without one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from pyramid.config import Configurator
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response
from pyramid.tweens import EXCVIEW

from pyramid_deferred.batch import BATCH_ATTR, RequestBatch
from pyramid_deferred.core import RunReport
from pyramid_deferred.core.log import get_logger
from pyramid_deferred.dashboard.access import COOKIE_NAME, Decision, Guard, Verdict, is_cross_site
from pyramid_deferred.dashboard.recorder import REQUEST_NOTE, STATUS_NOTE, Recorder, safe_text
from pyramid_deferred.hook import get_hook
from pyramid_deferred.settings import DeferredTaskSettings, load, setting
from pyramid_deferred.tween import DEFERRED_TASK_TWEEN
from pyramid_deferred.values import (
    ConfigError,
    hours_parser,
    int_parser,
    parse_bool,
    parse_dashboard_redis_url,
    parse_token,
    parse_url_path,
    seconds_parser,
)

log = get_logger(__name__)

if TYPE_CHECKING:
    from pyramid_deferred.dashboard.sharing import Sharing

DASHBOARD_ATTR = "deferred_task_dashboard"
PAGE_ROUTE = "deferred_task_dashboard"
DATA_ROUTE = "deferred_task_dashboard_data"
ASSET_ROUTE = "deferred_task_dashboard_asset"
LOGOUT_ROUTE = "deferred_task_dashboard_logout"
REDIS_ACTION = ("pyramid_deferred.dashboard", "redis")
DASHBOARD_TWEEN = "pyramid_deferred.dashboard.request_line_tween_factory"
MAX_REQUEST_LINE = 200
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
LOGOUT_FORM = '<form method="post" action="{{base}}/logout" class="logout"><button>Log out</button></form>'
DENIED_PAGE = Decision(Verdict.DENIED)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" with the page's
    # own login form, and the cross-site check could not tell it from a form elsewhere.
    "Referrer-Policy": "same-origin",
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
        key="dashboard.token", env="APP_DASHBOARD_TOKEN", parse=parse_token, default="", secret=True,
        doc="The page's access token (a secret: put it in the environment, not the .ini file); sent as "
        "the `X-Dashboard-Token` header, or typed into the page's form (a cookie). Never in a URL, "
        "a log line or a repr; a guessable one stops start-up.",
    )
    require_token: bool = setting(
        key="dashboard.require_token", env="APP_DASHBOARD_REQUIRE_TOKEN", parse=parse_bool, default=True,
        doc="Refuse to start the dashboard without `dashboard.token`; false only for development, where "
        "the page is then open to anyone who reaches the server.",
    )
    login_hours: float = setting(
        key="dashboard.login_hours", env="APP_DASHBOARD_LOGIN_HOURS",
        parse=hours_parser(minimum=0.05, maximum=168), default=8.0,
        doc="How long a login through the page's form lasts: the cookie carries its issue time under "
        "the HMAC and is refused after this, whatever the browser keeps. A new token ends every login.",
    )
    secure_cookie: bool = setting(
        key="dashboard.secure_cookie", env="APP_DASHBOARD_SECURE_COOKIE", parse=parse_bool, default=False,
        doc="Always mark the login cookie `Secure`. Without it, `Secure` follows the request's scheme as "
        "the server sees it (https behind a proxy only where the server trusts its X-Forwarded-Proto).",
    )
    max_failures_per_client: int = setting(
        key="dashboard.max_failures_per_client", env="APP_DASHBOARD_MAX_FAILURES_PER_CLIENT",
        parse=int_parser(minimum=1, maximum=10_000), default=10,
        doc="Wrong tokens (header, Bearer or form) one client address may send within the throttle "
        "window; past it, its token attempts get 429 until the window ends (one WARNING per window).",
    )
    max_failures: int = setting(
        key="dashboard.max_failures", env="APP_DASHBOARD_MAX_FAILURES",
        parse=int_parser(minimum=1, maximum=1_000_000), default=100,
        doc="Wrong tokens from all clients together within the window; past it, every token attempt "
        "gets 429 until the window ends (a spread guess). Logged-in browsers keep their access.",
    )
    throttle_window_seconds: float = setting(
        key="dashboard.throttle_window_seconds", env="APP_DASHBOARD_THROTTLE_WINDOW_SECONDS",
        parse=seconds_parser(minimum=1, maximum=86_400), default=300.0,
        doc="The window the wrong tokens are counted in, from the first one (per client, and overall).",
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
    redis_url: str = setting(
        key="dashboard.redis_url", env="APP_DASHBOARD_REDIS_URL", parse=parse_dashboard_redis_url,
        default="", secret=True,
        doc="Redis through which the page shows every worker process: each publishes its runs and "
        "statistics there (a background thread, batched) and the page merges them, with each run's pid. "
        "Empty: the broker's, else each process shows its own. Needs `pyramid-deferred[redis]`. Never "
        "logged or shown (it may hold a password).",
    )
    redis_ttl_seconds: float = setting(
        key="dashboard.redis_ttl_seconds", env="APP_DASHBOARD_REDIS_TTL_SECONDS",
        parse=seconds_parser(minimum=30, maximum=7 * 86_400), default=600.0,
        doc="How long the page's keys live in Redis after their last write; a live worker rewrites "
        "its own at least every 10 s. A stopped worker leaves the page, and a stopped deployment's "
        "data leaves Redis, this long after.",
    )


def request_line(environ: Mapping[str, Any]) -> str:
    """Method and path as the client sent them (no query string: it may hold anything)."""
    raw = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    try:  # WSGI gives the path as latin-1 text of the raw bytes
        path = raw.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        path = raw
    return safe_text(f"{environ.get('REQUEST_METHOD', '?')} {path}", MAX_REQUEST_LINE)


class Dashboard:
    """The app's dashboard: settings, recorder, access guard, panels."""

    def __init__(self, settings: DashboardSettings) -> None:
        self.settings = settings
        self.base = settings.path.rstrip("/")
        self.recorder = Recorder(recent_runs=settings.recent_runs, max_task_names=settings.max_task_names)
        self.guard = Guard(
            settings.token, login_seconds=settings.login_hours * 3600,
            max_failures_per_client=settings.max_failures_per_client, max_failures=settings.max_failures,
            window_seconds=settings.throttle_window_seconds,
        )
        self.panels: list[tuple[str, PanelRows]] = []
        self.sharing: Sharing | None = None
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

    def share(self, url: str, source: str) -> None:
        """Publish this process's runs to Redis and show every worker's (``source``: the setting
        that gave the URL, for errors). The Redis client is imported here, and only here."""
        try:
            from pyramid_deferred.dashboard.sharing import Sharing
        except ImportError as error:
            if error.name is None or error.name.split(".")[0] != "redis":
                raise
            raise ConfigError(f"{source} is set but the Redis client is not installed ({error.name} is "
                              "missing): install pyramid-deferred[redis]") from None
        self.sharing = Sharing(url, source, self.recorder, ttl_seconds=self.settings.redis_ttl_seconds)

    def close(self) -> None:
        """Stop publishing (an app's end in tests); the page then shows what Redis still holds."""
        if self.sharing is not None:
            self.sharing.close()

    def data(self, request: Request) -> dict[str, Any]:
        hook = get_hook(request.registry)
        settings = hook.settings
        view = self.sharing.snapshot() if self.sharing is not None else self._this_process()
        return {
            "pid": os.getpid(),
            "process_started_at": self.started_at,
            "generated_at": time.time(),
            "settings": {"budget_seconds": settings.budget_seconds, "strategy": settings.strategy,
                         "enabled": settings.enabled},
            "queue": {"length": hook.worker.queue_length, "capacity": settings.worker_queue_size,
                      "busy_threads": hook.worker.busy_threads, "threads": settings.worker_threads},
            **view,
            "panels": [self._panel(title, rows, request) for title, rows in self.panels],
        }

    def _this_process(self) -> dict[str, Any]:
        """Without Redis: this process's own runs, and the page says so."""
        pid = os.getpid()
        return {
            **self.recorder.snapshot(),
            "shared": False,
            "scope": f"This page shows worker process {pid} only: each process keeps its own recent runs "
            "in memory. With several workers, each poll may reach another one; set dashboard.redis_url "
            "to see them all, or use the metrics endpoint for totals.",
            "partial": None,
            "pids": [pid],
            "workers": [{"pid": pid, "host": self.recorder.host, "seen_seconds_ago": 0.0,
                         "started_at": self.started_at, "total_runs": self.recorder.total_runs,
                         "published": 0, "dropped": 0, "silent": False, "this": True}],
            "ignored_entries": 0,
            "publishing": None,
        }

    @staticmethod
    def _panel(title: str, rows: PanelRows, request: Request) -> dict[str, Any]:
        try:
            data = [{str(k): _json_value(v) for k, v in row.items()} for row in rows(request)]
        except Exception:
            log.exception("Dashboard panel %r failed", title)
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


def _login_page(dashboard: Dashboard, message: str, decision: Decision = DENIED_PAGE) -> Response:
    """The form, with why it is shown: 403, or 429 (and ``Retry-After``) while throttled."""
    body = dashboard.login.replace("{{path}}", escape(dashboard.page_url))
    body = body.replace("{{message}}", escape(message))
    response = Response(body, status=403, content_type="text/html", charset="utf-8")
    if decision.verdict is Verdict.THROTTLED:
        _throttled(response, decision)
    return _secure(response)


def _throttled(response: Response, decision: Decision) -> None:
    response.status_int = 429
    response.headers["Retry-After"] = str(decision.retry_after_seconds)


def _refusal_message(decision: Decision, denied: str) -> str:
    if decision.verdict is Verdict.THROTTLED:
        return f"Too many wrong tokens: try again in {decision.retry_after_seconds} s."
    return denied


def page_view(request: Request) -> Response:
    dashboard = get_dashboard(request.registry)
    decision = dashboard.guard.check(request)
    if decision.verdict is not Verdict.ALLOWED:
        return _login_page(dashboard, _refusal_message(decision, "This page needs the dashboard token."),
                           decision)
    body = dashboard.page.replace("{{base}}", escape(dashboard.base))
    logout = "" if dashboard.guard.open else LOGOUT_FORM.replace("{{base}}", escape(dashboard.base))
    body = body.replace("{{logout}}", logout)
    return _secure(Response(body, content_type="text/html", charset="utf-8"))


def login_view(request: Request) -> Response:
    """The page's form posts the token here; a match sets the login cookie and goes back to the page.
    A post from another site is refused before its token is looked at."""
    dashboard = get_dashboard(request.registry)
    if is_cross_site(request):
        return _login_page(dashboard, "A login from another site is refused: use this page's form.")
    if dashboard.guard.open:
        return _login_page(dashboard, "This page has no token to log in with.")
    try:
        given = request.POST.get("token")
    except Exception:  # a body WebOb cannot parse is a wrong token, never a 500
        given = None
    decision = dashboard.guard.attempt(request, given.strip() if isinstance(given, str) else "")
    if decision.verdict is not Verdict.ALLOWED:
        return _login_page(dashboard, _refusal_message(decision, "Wrong token."), decision)
    response = Response(status=303, location=dashboard.page_url)
    response.set_cookie(
        COOKIE_NAME, dashboard.guard.cookies.issue(dashboard.guard.clock()), path=dashboard.page_url,
        max_age=int(dashboard.guard.cookies.max_age_seconds), httponly=True, samesite="Strict",
        secure=_secure_cookie(dashboard, request),
    )
    return _secure(response)


def logout_view(request: Request) -> Response:
    """The page's *Log out* button: the browser forgets its login cookie."""
    dashboard = get_dashboard(request.registry)
    if is_cross_site(request):
        return _login_page(dashboard, "A logout from another site is refused: use this page's button.")
    response = Response(status=303, location=dashboard.page_url)
    response.set_cookie(  # emptied and expired, with the attributes it was set with
        COOKIE_NAME, "", path=dashboard.page_url, max_age=0, httponly=True, samesite="Strict",
        secure=_secure_cookie(dashboard, request),
    )
    return _secure(response)


def _secure_cookie(dashboard: Dashboard, request: Request) -> bool:
    """https as the server sees it (a trusted proxy's X-Forwarded-Proto included), or forced."""
    return dashboard.settings.secure_cookie or request.scheme == "https"


def data_view(request: Request) -> Response:
    dashboard = get_dashboard(request.registry)
    decision = dashboard.guard.check(request)
    if decision.verdict is not Verdict.ALLOWED:
        throttled = decision.verdict is Verdict.THROTTLED
        error = {"error": "throttled", "retry_after_seconds": decision.retry_after_seconds} if throttled \
            else {"error": "forbidden"}
        response = Response(json.dumps(error), status=403, content_type="application/json", charset="utf-8")
        if throttled:
            _throttled(response, decision)
        return _secure(response)
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


def redis_url_of(settings: DashboardSettings, deferred: DeferredTaskSettings) -> tuple[str, str]:
    """The Redis URL the page uses, and the setting it came from: its own, else the broker's."""
    if settings.redis_url:
        return settings.redis_url, "APP_DASHBOARD_REDIS_URL (dashboard.redis_url)"
    return deferred.broker_url, "APP_DEFERRED_TASK_BROKER_URL (deferred_task.broker_url)"


def includeme(config: Configurator) -> None:
    settings = load(DashboardSettings, config.registry.settings)
    if settings.require_token and not settings.token:
        raise ConfigError(
            "APP_DASHBOARD_TOKEN (dashboard.token) is not set, and the dashboard requires a token; "
            f"allowed: {parse_token.allowed}; or dashboard.require_token = false in development"
        )
    dashboard = Dashboard(settings)
    setattr(config.registry, DASHBOARD_ATTR, dashboard)
    config.add_directive("add_deferred_dashboard_panel", add_deferred_dashboard_panel)
    config.add_deferred_task_observer(dashboard.observe)
    registry = config.registry

    def share() -> None:  # after the add-on's own settings are read (the broker's URL)
        url, source = redis_url_of(settings, get_hook(registry).settings)
        if url:
            dashboard.share(url, source)

    config.action(REDIS_ACTION, share)
    config.add_tween(DASHBOARD_TWEEN, under=DEFERRED_TASK_TWEEN, over=EXCVIEW)
    base = dashboard.base
    config.add_route(PAGE_ROUTE, dashboard.page_url)
    config.add_route(DATA_ROUTE, f"{base}/data.json")
    config.add_route(ASSET_ROUTE, f"{base}/assets/{{name}}")
    config.add_route(LOGOUT_ROUTE, f"{base}/logout")
    config.add_view(page_view, route_name=PAGE_ROUTE, request_method=("GET", "HEAD"))
    config.add_view(login_view, route_name=PAGE_ROUTE, request_method="POST")
    config.add_view(logout_view, route_name=LOGOUT_ROUTE, request_method="POST")
    config.add_view(data_view, route_name=DATA_ROUTE, request_method=("GET", "HEAD"))
    config.add_view(asset_view, route_name=ASSET_ROUTE, request_method=("GET", "HEAD"))

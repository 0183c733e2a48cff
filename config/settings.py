"""The example app's own settings (logging, metrics and dashboard on or off, the public origin),
declared like the add-on's: ``pyramid_deferred.settings.setting`` drives their loading, errors,
docs row and bad-input test.
The runner's settings (``deferred_task.*``) belong to the add-on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pyramid_deferred.settings import load, setting
from pyramid_deferred.values import Parser, Rejected, choice_parser, int_parser, parse_bool, parse_path

LOG_LEVELS = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")


def _origin(raw: str) -> str:
    value = raw.strip()
    if not value.isascii() or not value.isprintable() or " " in value:
        raise Rejected("is not an http(s) origin")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        raise Rejected("is not an http(s) origin") from None
    plain = parts.scheme in ("http", "https") and parts.hostname and parts.path in ("", "/")
    if not plain or parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise Rejected("is not an http(s) origin")
    return f"{parts.scheme}://{parts.netloc.lower()}"


parse_origin: Parser[str] = Parser(
    "an http(s) origin: scheme, host and optional port, such as https://shop.example.com (no path, "
    "query or user)",
    _origin,
)


@dataclass(frozen=True, slots=True)
class AppSettings:
    log_threshold: str = setting(
        key="deferred_task.log_threshold", env="DEFERRED_TASK_LOG_THRESHOLD",
        parse=choice_parser(LOG_LEVELS), default="WARNING",
        doc="Lowest level written to the DEFERRED_TASK channel's file.",
    )
    log_max_files: int = setting(
        key="deferred_task.log_max_files", env="DEFERRED_TASK_LOG_MAX_FILES",
        parse=int_parser(minimum=1, maximum=10_000), default=15,
        doc="Daily files of that channel kept.",
    )
    log_path: str = setting(
        key="deferred_task.log_path", env="DEFERRED_TASK_LOG_PATH", parse=parse_path,
        default="logs/deferred_task.log", doc="The DEFERRED_TASK channel's file (rotated at midnight).",
    )
    app_log_level: str = setting(
        key="app.log_level", env="APP_LOG_LEVEL", parse=choice_parser(LOG_LEVELS), default="INFO",
        doc="Lowest level written to the console (every channel).",
    )
    public_origin: str = setting(
        key="app.public_origin", env="APP_PUBLIC_ORIGIN", parse=parse_origin, default="http://127.0.0.1:6543",
        doc="Where visitors reach the shop. Every URL sent to Meta and Matomo is on it, and a page URL "
        "a browser reports must be on it; the request's Host header is never used for either. Set "
        "it in production (`make serve`'s address is the default).",
    )
    metrics_enabled: bool = setting(
        key="metrics.enabled", env="APP_METRICS_ENABLED", parse=parse_bool, default=False,
        doc="Include `pyramid_deferred.metrics` (Prometheus at `metrics.path`); off unless asked "
        "for: the endpoint shows task names.",
    )
    dashboard_enabled: bool = setting(
        key="dashboard.enabled", env="APP_DASHBOARD_ENABLED", parse=parse_bool, default=False,
        doc="Include `pyramid_deferred.dashboard` (the live page at `dashboard.path`, with the "
        "circuit breakers' panel); off unless asked for, and then it needs `dashboard.token`.",
    )


def load_app_settings(
    settings: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> AppSettings:
    """Read and validate at start-up; a bad value raises ConfigError naming it."""
    return load(AppSettings, settings, environ)

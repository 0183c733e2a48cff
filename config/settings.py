"""The example app's own settings (logging, metrics and dashboard on or off), declared like the
add-on's: ``pyramid_deferred.settings.setting`` drives their loading, errors, docs row and bad-input test.
The runner's settings (``deferred_task.*``) belong to the add-on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyramid_deferred.settings import load, setting
from pyramid_deferred.values import choice_parser, int_parser, parse_bool, parse_path

LOG_LEVELS = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")


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

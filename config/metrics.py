"""Prometheus metrics settings: APP_METRICS_* (environment) or metrics.* (.ini)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.values import parse_bool, parse_url_path, read_setting


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    enabled: bool = False
    """Off unless asked for: the endpoint shows task names, so expose it only where it is protected."""
    path: str = "/metrics"


def load_metrics_settings(
    settings: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> MetricsSettings:
    """Read and validate at start-up; a bad value raises ConfigError naming the variable."""
    settings = settings or {}
    environ = os.environ if environ is None else environ
    defaults = MetricsSettings()
    return MetricsSettings(
        enabled=read_setting(
            env_var="APP_METRICS_ENABLED", ini_key="metrics.enabled", parse=parse_bool,
            default=defaults.enabled, settings=settings, environ=environ,
        ),
        path=read_setting(
            env_var="APP_METRICS_PATH", ini_key="metrics.path", parse=parse_url_path,
            default=defaults.path, settings=settings, environ=environ,
        ),
    )

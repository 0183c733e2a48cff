"""Prometheus metrics settings: APP_METRICS_* (environment) or metrics.* (.ini)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.metrics import MULTIPROC_DIR_ENV
from config.values import ConfigError, parse_bool, parse_url_path, read_setting


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
    loaded = MetricsSettings(
        enabled=read_setting(
            env_var="APP_METRICS_ENABLED", ini_key="metrics.enabled", parse=parse_bool,
            default=defaults.enabled, settings=settings, environ=environ,
        ),
        path=read_setting(
            env_var="APP_METRICS_PATH", ini_key="metrics.path", parse=parse_url_path,
            default=defaults.path, settings=settings, environ=environ,
        ),
    )
    if loaded.enabled and MULTIPROC_DIR_ENV in environ:
        check_multiprocess_dir(environ[MULTIPROC_DIR_ENV])
    return loaded


def check_multiprocess_dir(raw: str) -> None:
    """prometheus-client writes every worker's values there: otherwise the first metric created
    fails with a FileNotFoundError naming a .db file, or (empty value) writes into the cwd."""
    if not raw.strip() or not os.path.isdir(raw) or not os.access(raw, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{MULTIPROC_DIR_ENV}={raw!r} is not a writable directory; allowed: an existing directory "
            "(emptied at each deploy), or leave it unset for a single process"
        )

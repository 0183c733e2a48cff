"""The runner's settings: APP_DEFERRED_TASK_*, DEFERRED_TASK_LOG_* (environment) or deferred_task.* (.ini)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.values import (
    choice_parser,
    int_parser,
    parse_bool,
    parse_path,
    read_setting,
    seconds_parser,
)

LOG_LEVELS = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")
STRATEGIES = ("auto", "close", "thread")
MAX_BUDGET_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class DeferredTaskSettings:
    enabled: bool = True
    budget_seconds: float = 10.0
    log_threshold: str = "WARNING"
    log_max_files: int = 15
    log_path: str = "logs/deferred_task.log"
    app_log_level: str = "INFO"
    strategy: str = "auto"
    hard_limit_seconds: float = 0.0
    worker_threads: int = 2
    worker_queue_size: int = 100
    shutdown_grace_seconds: float = 10.0


def load_deferred_task_settings(
    settings: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> DeferredTaskSettings:
    """Read and validate every setting at start-up; a bad value raises ConfigError naming it."""
    settings = settings or {}
    environ = os.environ if environ is None else environ
    defaults = DeferredTaskSettings()

    def read(env_var: str, ini_key: str, parse: Any, default: Any) -> Any:
        return read_setting(
            env_var=env_var, ini_key=ini_key, parse=parse, default=default,
            settings=settings, environ=environ,
        )

    return DeferredTaskSettings(
        enabled=read("APP_DEFERRED_TASK_ENABLED", "deferred_task.enabled", parse_bool, defaults.enabled),
        budget_seconds=read(
            "APP_DEFERRED_TASK_BUDGET_SECONDS", "deferred_task.budget_seconds",
            seconds_parser(minimum=0, maximum=MAX_BUDGET_SECONDS, note=" (0 = unlimited)"),
            defaults.budget_seconds,
        ),
        log_threshold=read(
            "DEFERRED_TASK_LOG_THRESHOLD", "deferred_task.log_threshold",
            choice_parser(LOG_LEVELS), defaults.log_threshold,
        ),
        log_max_files=read(
            "DEFERRED_TASK_LOG_MAX_FILES", "deferred_task.log_max_files",
            int_parser(minimum=1, maximum=10_000), defaults.log_max_files,
        ),
        log_path=read("DEFERRED_TASK_LOG_PATH", "deferred_task.log_path", parse_path, defaults.log_path),
        app_log_level=read(
            "APP_LOG_LEVEL", "app.log_level", choice_parser(LOG_LEVELS), defaults.app_log_level
        ),
        strategy=read(
            "APP_DEFERRED_TASK_STRATEGY", "deferred_task.strategy",
            choice_parser(STRATEGIES), defaults.strategy,
        ),
        hard_limit_seconds=read(
            "APP_DEFERRED_TASK_HARD_LIMIT_SECONDS", "deferred_task.hard_limit_seconds",
            seconds_parser(minimum=0, maximum=MAX_BUDGET_SECONDS, note=" (0 = no hard limit)"),
            defaults.hard_limit_seconds,
        ),
        worker_threads=read(
            "APP_DEFERRED_TASK_WORKER_THREADS", "deferred_task.worker_threads",
            int_parser(minimum=1, maximum=64), defaults.worker_threads,
        ),
        worker_queue_size=read(
            "APP_DEFERRED_TASK_WORKER_QUEUE_SIZE", "deferred_task.worker_queue_size",
            int_parser(minimum=1, maximum=100_000), defaults.worker_queue_size,
        ),
        shutdown_grace_seconds=read(
            "APP_DEFERRED_TASK_SHUTDOWN_GRACE_SECONDS", "deferred_task.shutdown_grace_seconds",
            seconds_parser(minimum=0, maximum=3600), defaults.shutdown_grace_seconds,
        ),
    )

"""What ``gunicorn.conf.py`` does, importable and testable: the hard limit and loguru for the master.

gunicorn's arbiter kills a worker whose heartbeat is older than ``--timeout``
(``Arbiter.murder_workers``, checked about once a second). A **sync** worker beats only between
requests (``SyncWorker.run_for_one`` calls ``notify()`` before each ``accept()``), so a request's
deferred tasks, which run in ``close()``, count against that timeout: the worker would be
SIGABRTed mid-task. The hard limit makes the runner skip what cannot fit instead.

A **gthread** worker beats from its main thread every second (``ThreadWorker.run``: ``notify()``
then ``wait_for_and_dispatch_events(timeout=1.0)``) while requests run in its thread pool, so a
long request never starves the heartbeat: no hard limit is derived there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from gunicorn import glogging

from config.deferred_tasks import load_deferred_task_settings
from config.logging import InterceptHandler, add_console_sink

HARD_LIMIT_ENV = "APP_DEFERRED_TASK_HARD_LIMIT_SECONDS"
MIN_MARGIN_SECONDS = 1.0
MARGIN_FRACTION = 0.1
_APP_ATTRIBUTES = ("app", "application", "wrapped", "__wrapped__")


def hard_limit_for(timeout: float) -> float:
    """gunicorn's timeout minus a margin (10 %, at least 1 s); 0 when the timeout is off.

    The margin covers what the request's clock does not see: reading the request before the
    tween starts, the arbiter's one-second check, a task that overruns its declared cost.
    """
    if timeout <= 0:
        return 0.0
    limit = timeout - max(MIN_MARGIN_SECONDS, timeout * MARGIN_FRACTION)
    return limit if limit > 0 else timeout / 2


def is_sync_worker(worker: Any) -> bool:
    from gunicorn.workers.sync import SyncWorker

    return isinstance(worker, SyncWorker)


def find_container(app: Any, depth: int = 5) -> Any:
    """The dependency-injector container behind a WSGI app: the Pyramid Router's registry, or
    that of an app a middleware wraps (``app``/``application``/``registry`` attributes)."""
    for _ in range(depth):
        if app is None:
            return None
        container = getattr(getattr(app, "registry", None), "container", None)
        if container is not None:
            return container
        app = next((getattr(app, name) for name in _APP_ATTRIBUTES if hasattr(app, name)), None)
    return None


def apply_hard_limit(worker: Any, environ: Mapping[str, str] = os.environ) -> float | None:
    """``post_worker_init``: give a sync worker's app ``hard_limit_for(timeout)``; the limit set.

    ``APP_DEFERRED_TASK_HARD_LIMIT_SECONDS`` in the environment always wins (0 included); a
    smaller non-zero ``.ini`` value is kept. Returns the limit now in force, or None when the
    app's setting was left alone.
    """
    log = worker.log
    if HARD_LIMIT_ENV in environ:
        log.info("Deferred tasks: hard limit left to %s=%s", HARD_LIMIT_ENV, environ[HARD_LIMIT_ENV])
        return None
    if not is_sync_worker(worker):
        return None
    timeout = float(worker.cfg.timeout or 0)
    limit = hard_limit_for(timeout)
    container = find_container(worker.wsgi)
    if container is None:
        log.warning(
            "Deferred tasks: no container found behind %r; set %s=%s yourself, or a task may get "
            "this sync worker killed after --timeout %ss", worker.wsgi, HARD_LIMIT_ENV, limit, timeout,
        )
        return None
    setting = container.config.deferred_task.hard_limit_seconds
    configured = float(setting() or 0)
    if configured and (not limit or configured <= limit):
        return configured
    setting.from_value(limit)
    log.info(
        "Deferred tasks: hard limit %.1fs (sync worker, gunicorn timeout %ss minus a safety margin)",
        limit, timeout,
    )
    return limit


class LoguruLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger with the master's error and access logs routed into loguru.

    Workers re-route stdlib logging when the app starts (``config.logging.setup_logging``);
    this covers the master, which never loads the app. A log file given to gunicorn
    (``--error-logfile``, ``--access-logfile`` other than ``-``) keeps gunicorn's own handler.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        add_console_sink(load_deferred_task_settings({}, os.environ).app_log_level)
        targets = [(self.error_log, cfg.errorlog), (self.access_log, cfg.accesslog)]
        for log, destination in targets:
            if destination in ("-", None):
                log.handlers = [InterceptHandler()]
                log.propagate = False


def forget_dead_worker_metrics(worker: Any, environ: Mapping[str, str] = os.environ) -> None:
    """``child_exit``: in prometheus-client's multi-process mode, retire the worker's live gauges."""
    from app.metrics import MULTIPROC_DIR_ENV

    if environ.get(MULTIPROC_DIR_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def check_settings(server: Any, grace_seconds: float) -> None:
    """``on_starting``: warn about combinations that silently defeat the deferred-task settings."""
    cfg = server.cfg
    requested = cfg.settings["worker_class"].get()
    if requested == "sync" and cfg.threads > 1:
        server.log.warning(
            "-k sync with threads=%s runs gthread workers (gunicorn's rule); pass --threads 1 for "
            "sync workers", cfg.threads,
        )
    graceful = float(cfg.graceful_timeout)
    if graceful <= grace_seconds:
        server.log.warning(
            "graceful_timeout %ss <= the deferred-task shutdown grace %ss: gunicorn kills workers "
            "before their queued deferred tasks can run; raise --graceful-timeout", graceful, grace_seconds,
        )

"""gunicorn support: the hard limit of a sync worker's app, a stop that spills before gunicorn kills,
and start-up checks. In gunicorn.conf.py::

    from pyramid_deferred.gunicorn import post_worker_init, on_starting, child_exit


gunicorn's arbiter kills a worker whose heartbeat is older than ``--timeout``
(``Arbiter.murder_workers``, checked about once a second). A **sync** worker beats only between
requests (``SyncWorker.run_for_one`` calls ``notify()`` before each ``accept()``), so a request's
deferred tasks, which run in ``close()``, count against that timeout: the worker would be
SIGABRTed mid-task. The hard limit makes the runner skip what cannot fit instead.

A **gthread** worker beats from its main thread every second (``ThreadWorker.run``: ``notify()``
then ``wait_for_and_dispatch_events(timeout=1.0)``) while requests run in its thread pool, so a
long request never starves the heartbeat: no hard limit is derived there.

When the arbiter stops a worker (SIGTERM), the worker finishes its requests, their deferred
tasks included, for up to ``--graceful-timeout``; then the arbiter kills it (SIGKILL). The
add-on's grace (``shutdown_grace_seconds``) is shortened to end before that kill, so that the
durable tasks still unfinished then are spilled, not lost (``pyramid_deferred.lifecycle``).
A quick stop (SIGINT, SIGQUIT) spills them at once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

from pyramid_deferred.batch import RequestBatch
from pyramid_deferred.hook import DeferredTaskHook
from pyramid_deferred.settings import load_deferred_task_settings

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


def find_hook(app: Any, depth: int = 5) -> DeferredTaskHook | None:
    """The add-on's hook behind a WSGI app: the Pyramid Router's registry, or that of an app a
    middleware wraps (``app``/``application``/``wrapped`` attributes)."""
    for _ in range(depth):
        if app is None:
            return None
        hook = getattr(getattr(app, "registry", None), "deferred_task_hook", None)
        if isinstance(hook, DeferredTaskHook):
            return hook
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
    hook = find_hook(worker.wsgi)
    if hook is None:
        log.warning(
            "Deferred tasks: no pyramid_deferred app found behind %r; set %s=%s yourself, or a task "
            "may get this sync worker killed after --timeout %ss",
            worker.wsgi, HARD_LIMIT_ENV, limit, timeout,
        )
        return None
    configured = hook.hard_limit_seconds
    if configured and (not limit or configured <= limit):
        return configured
    hook.hard_limit_seconds = limit
    log.info(
        "Deferred tasks: hard limit %.1fs (sync worker, gunicorn timeout %ss minus a safety margin)",
        limit, timeout,
    )
    return limit


def forget_dead_worker_metrics(worker: Any, environ: Mapping[str, str] = os.environ) -> None:
    """``child_exit``: in prometheus-client's multi-process mode, retire the worker's live gauges."""
    from pyramid_deferred.metrics.collector import MULTIPROC_DIR_ENV

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


# gunicorn server hooks, to import into a gunicorn.conf.py.


def on_starting(server: Any) -> None:
    check_settings(server, load_deferred_task_settings({}, os.environ).shutdown_grace_seconds)


def post_worker_init(worker: Any) -> None:
    apply_hard_limit(worker)
    ask_for_replacement_when_stuck(worker)
    stop_before_the_kill(worker)


def stop_before_the_kill(worker: Any) -> None:
    """When the arbiter stops this worker, the grace of its unfinished batches begins, ending before
    ``graceful_timeout`` runs out (gunicorn's own handler still runs: the worker stops as usual).
    A sync worker may be busy in a task in its only thread, and a gthread worker's pool threads
    keep the interpreter from reaching ``atexit``: a timer decides what is left at the end."""
    hook = find_hook(worker.wsgi)
    if hook is None:
        return
    grace = hard_limit_for(float(worker.cfg.graceful_timeout))  # the same margin before the kill
    for signum, seconds in ((signal.SIGTERM, grace), (signal.SIGINT, 0.0), (signal.SIGQUIT, 0.0)):
        _begin_stop_before(signum, hook, seconds)


def _begin_stop_before(signum: int, hook: DeferredTaskHook, grace_seconds: float) -> None:
    previous = signal.getsignal(signum)

    def begin_then_stop(received: int, frame: Any) -> None:
        hook.stop.begin(grace_seconds)
        if callable(previous):
            previous(received, frame)

    signal.signal(signum, begin_then_stop)


def ask_for_replacement_when_stuck(worker: Any) -> None:
    """A task stuck past the hard limit holds a thread (a sync worker: the process) for good:
    the worker stops taking requests and exits when it can, so the arbiter starts a new one and
    capacity comes back (gunicorn kills it after its timeout if the task never returns)."""
    hook = find_hook(worker.wsgi)
    if hook is None:
        return

    def replace(batch: RequestBatch) -> None:
        worker.log.error(
            "Deferred task stuck past the hard limit in request %s: this worker (pid %s) asks to be "
            "replaced", batch.request_id, worker.pid,
        )
        worker.alive = False

    hook.watchdog.on_stuck = replace


def child_exit(server: Any, worker: Any) -> None:
    forget_dead_worker_metrics(worker)

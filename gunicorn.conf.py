"""gunicorn settings for this app; command-line options win over every value here.

    gunicorn -c gunicorn.conf.py --paste config/production.ini

- sync workers get ``APP_DEFERRED_TASK_HARD_LIMIT_SECONDS`` = ``timeout`` minus a safety margin
  (``post_worker_init``), unless that variable is set: a deferred task that cannot finish before
  gunicorn would kill the worker is skipped and logged instead (see config/gunicorn_server.py);
- ``graceful_timeout`` leaves the hand-off worker its shutdown grace to drain after a SIGTERM;
- gunicorn's own logs (master included) go through loguru, like the app's;
- with ``PROMETHEUS_MULTIPROC_DIR`` set, a dead worker's gauges are retired (see README, Metrics).
"""

from __future__ import annotations

import os
from typing import Any

from config.deferred_tasks import load_deferred_task_settings
from config.gunicorn_server import apply_hard_limit, check_settings, forget_dead_worker_metrics
from config.values import int_parser, read_setting

_settings = load_deferred_task_settings({}, os.environ)

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")  # loopback: a reverse proxy goes in front
workers = read_setting(  # a bad value stops gunicorn with a message naming the variable
    env_var="WEB_CONCURRENCY", ini_key="", parse=int_parser(minimum=1, maximum=256), default=2,
    settings={}, environ=os.environ,
)
worker_class = "gthread"
threads = 4  # with these, `-k sync` alone still runs gthread (gunicorn's rule): add `--threads 1`
timeout = 30
# A worker finishing its requests, then draining the hand-off worker, must not be SIGKILLed first.
graceful_timeout = int(_settings.shutdown_grace_seconds) + 20
control_socket_disable = True  # gunicorn >= 25.1 otherwise opens a control socket under ~/.gunicorn
logger_class = "config.gunicorn_server.LoguruLogger"


def on_starting(server: Any) -> None:
    check_settings(server, _settings.shutdown_grace_seconds)


def post_worker_init(worker: Any) -> None:
    apply_hard_limit(worker)


def child_exit(server: Any, worker: Any) -> None:
    forget_dead_worker_metrics(worker)

"""gunicorn settings for this app; command-line options win over every value here.

    gunicorn -c gunicorn.conf.py --paste config/production.ini

- sync workers get ``APP_DEFERRED_TASK_HARD_LIMIT_SECONDS`` = ``timeout`` minus a safety margin
  (``post_worker_init`` from ``pyramid_deferred.gunicorn``), unless that variable is set: a
  deferred task that cannot finish before gunicorn would kill the worker is skipped and logged;
- ``graceful_timeout`` leaves the hand-off worker its shutdown grace to drain after a SIGTERM;
- gunicorn's own logs (master included) go through loguru, like the app's;
- only the proxy on this host is believed about https (``forwarded_allow_ips``);
- with ``PROMETHEUS_MULTIPROC_DIR`` set, a dead worker's gauges are retired (``child_exit``).
"""

from __future__ import annotations

import os

from pyramid_deferred.gunicorn import child_exit, on_starting, post_worker_init
from pyramid_deferred.settings import load_deferred_task_settings, read
from pyramid_deferred.values import int_parser

__all__ = ["child_exit", "on_starting", "post_worker_init"]

_settings = load_deferred_task_settings({}, os.environ)

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")  # loopback: a reverse proxy goes in front
workers = read(  # a bad value stops gunicorn with a message naming the variable
    "", "WEB_CONCURRENCY", int_parser(minimum=1, maximum=256), 2, {}, os.environ
)
worker_class = "gthread"
threads = 4  # with these, `-k sync` alone still runs gthread (gunicorn's rule): add `--threads 1`
timeout = 30
# A worker finishing its requests, then draining the hand-off worker, must not be SIGKILLed first.
graceful_timeout = int(_settings.shutdown_grace_seconds) + 20
# The proxy in front (on this host) is believed about https: its X-Forwarded-Proto sets the request's
# scheme, so cookies get Secure; from anyone else it is ignored. gunicorn does not take the client's
# address from X-Forwarded-For: for that, have the proxy speak the PROXY protocol (`proxy_protocol`,
# `proxy_allow_ips`), see docs/example-shop.md#behind-a-proxy. `--forwarded-allow-ips` overrides this.
forwarded_allow_ips = "127.0.0.1,::1"
control_socket_disable = True  # gunicorn >= 25.1 otherwise opens a control socket under ~/.gunicorn
logger_class = "config.gunicorn_server.LoguruLogger"

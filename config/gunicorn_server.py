"""gunicorn's own logs through loguru, like the app's (the deferred-task hooks come from
``pyramid_deferred.gunicorn``; see gunicorn.conf.py)."""

from __future__ import annotations

import os
from typing import Any

from gunicorn import glogging

from config.logging import InterceptHandler, add_console_sink
from config.settings import load_app_settings


class LoguruLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger with the master's error and access logs routed into loguru.

    Workers re-route stdlib logging when the app starts (``config.logging.setup_logging``);
    this covers the master, which never loads the app. A log file given to gunicorn
    (``--error-logfile``, ``--access-logfile`` other than ``-``) keeps gunicorn's own handler.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        add_console_sink(load_app_settings({}, os.environ).app_log_level)
        targets = [(self.error_log, cfg.errorlog), (self.access_log, cfg.accesslog)]
        for log, destination in targets:
            if destination in ("-", None):
                log.handlers = [InterceptHandler()]
                log.propagate = False

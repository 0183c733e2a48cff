"""The shop's Celery worker (app/worker.py's app) for the real-server tests: the probe app's
durable function (``record_durable``) is declared too, as an app's own worker module would
import the modules that declare its durable functions.

    celery -A tests.servers.durable_worker worker --pool=solo
"""

from __future__ import annotations

import tests.servers.probe_app  # noqa: F401  (declares record_durable: the worker may run it)
from app.worker import app

__all__ = ["app"]

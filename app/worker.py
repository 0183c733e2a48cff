"""The shop's Celery worker: runs the durable tasks (the revenue events) the web workers spilled.

    make worker      # celery -A app.worker worker -B --pool=solo --concurrency=1 -l info

It reads the same settings as the web app: ``APP_DEFERRED_TASK_BROKER_URL`` and
``APP_DEFERRED_TASK_SIGNING_KEY`` (required here, the web processes' own),
``APP_DEFERRED_TASK_ENCRYPTION_KEY`` and the other ``APP_DEFERRED_TASK_*`` variables, and
``APP_INI`` (default config/production.ini) for the ``deferred_task.*`` keys of the .ini file; the
integrations' credentials come from the environment, as in the web app (docs/durable.md). It
runs the durable functions of ``DURABLE_MODULES``, and no other.
"""

from __future__ import annotations

import os

from celery import Celery
from pyramid_deferred.celery import create_celery_app

from app.durable_tasks import use_process_container
from app.factory import build_container
from config.worker_ini import ini_settings, worker_ini_path

DURABLE_MODULES = ("app.durable_tasks",)
"""The modules that declare the shop's durable functions (``@durable_function``)."""


def create_worker_app() -> Celery:
    settings = ini_settings(worker_ini_path(os.environ))
    container = build_container(settings)
    container.init_resources()  # logging, as in the web app
    use_process_container(container)
    return create_celery_app(settings, main="shop", imports=DURABLE_MODULES)


app = create_worker_app()

"""The shop's Celery worker: runs the durable tasks (the revenue events) the web workers spilled.

    make worker      # celery -A app.worker worker --pool=solo --concurrency=1 -l info

It reads the same settings as the web app: ``APP_DEFERRED_TASK_BROKER_URL`` (required here) and
the other ``APP_DEFERRED_TASK_*`` variables, and ``APP_INI`` (default config/production.ini) for
the ``deferred_task.*`` keys of the .ini file; the integrations' credentials come from the
environment, as in the web app (docs/durable.md).
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from celery import Celery
from pyramid_deferred.celery import create_celery_app

from app.durable_tasks import use_process_container
from app.factory import build_container

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INI = ROOT / "config" / "production.ini"


def ini_settings(path: Path) -> dict[str, str]:
    """The ``[app:main]`` keys of a paste .ini file (no interpolation: values are plain)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    return dict(parser["app:main"]) if parser.has_section("app:main") else {}


def create_worker_app() -> Celery:
    settings = ini_settings(Path(os.environ.get("APP_INI", DEFAULT_INI)))
    container = build_container(settings)
    container.init_resources()  # logging, as in the web app
    use_process_container(container)
    return create_celery_app(settings, main="shop")


app = create_worker_app()

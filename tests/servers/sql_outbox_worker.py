"""The Celery worker of tests/servers/sql_outbox_app.py: the same durable functions, and the sweep
on the same outbox rows (``create_celery_app(outbox=...)``), as an app's own worker module does.

    celery -A tests.servers.sql_outbox_worker worker -B --pool=solo
"""

from __future__ import annotations

from pyramid_deferred.celery import create_celery_app

from tests.servers.sql_outbox_app import engine_and_outbox

app = create_celery_app(imports=("tests.servers.probe_app",), outbox=engine_and_outbox()[1])

"""Crash safety on the transactional outbox: an app on pyramid_tm, zope.sqlalchemy and a SQLite
file (as a cookiecutter app runs them) killed (SIGKILL) with one durable task running and two
queued after its response. The order and the three outbox rows committed together; the sweep of
the app's own Celery worker (its beat, reading the same rows) re-sends them once their lease ran
out; each runs once, on the worker; the rows are gone afterwards.

Its own module: its worker must be the only one on its broker (a worker of another outbox would
take half of the sweeps and of the tasks).
"""
# The fixtures are imported from tests/servers/durable_parts.py; a test's argument of the same name
# is pytest's injection, not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from tests.servers.contract import wait_for_marker
from tests.servers.durable_parts import (  # noqa: F401  (fixtures)
    DUPLICATE_WINDOW,
    KEYS_ENV,
    Worker,
    broker_url,
    running_worker,
)
from tests.servers.probe_app import SLEEP_IN_DURABLE_ENV
from tests.servers.servers import HOST, ServerSpec, fetch, poll, running_server
from tests.servers.sql_outbox_app import SQL_URL_ENV
from tests.servers.test_durable_outbox import RECOVERY_TIMEOUT, SHORT, SWEEP_SECONDS, runs_of

pytestmark = pytest.mark.servers


SQL_APP = ServerSpec("waitress-sql-outbox", lambda port: [
    sys.executable, "-m", "waitress", f"--listen={HOST}:{port}", "--threads=4",
    "--call", "tests.servers.sql_outbox_app:make_app",
], concurrency=4, family="waitress")


@pytest.fixture(scope="module")
def sql_worker(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Worker, str]]:
    """A worker whose sweep reads the SQLite outbox of tests/servers/sql_outbox_app.py."""
    directory = tmp_path_factory.mktemp("sql-outbox")
    url = f"sqlite:///{directory / 'shop.sqlite'}"
    env = {**SHORT, SLEEP_IN_DURABLE_ENV: "0", SQL_URL_ENV: url}
    app = "tests.servers.sql_outbox_worker"
    with running_worker(broker_url, directory, env, beat=True, app=app) as worker:
        yield worker, url


def test_a_killed_process_on_the_transactional_outbox_loses_no_durable_task(sql_worker):
    worker, url = sql_worker
    rid = "killedsql"
    spec = dataclasses.replace(SQL_APP, env={"APP_DEFERRED_TASK_BROKER_URL": worker.broker_url, **KEYS_ENV,
                                             **SHORT, SQL_URL_ENV: url})
    with running_server(spec, worker.probe_dir) as server:
        assert fetch(server.port, f"/order?rid={rid}&seconds=60").status == 200
        wait_for_marker(server, f"{rid}.started", timeout=10)
        engine = create_engine(url)
        assert rows(engine, "deferred_task_outbox") == 3 and rows(engine, "orders") == 1  # one commit
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
    assert poll(lambda: len(runs_of(worker, rid)) >= 3, timeout=RECOVERY_TIMEOUT), worker.log()
    time.sleep(DUPLICATE_WINDOW + SWEEP_SECONDS)
    assert sorted(index for _, index, _ in runs_of(worker, rid)) == ["0", "1", "2"]  # once each
    assert poll(lambda: rows(engine, "deferred_task_outbox") == 0, timeout=5)
    engine.dispose()


def rows(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())

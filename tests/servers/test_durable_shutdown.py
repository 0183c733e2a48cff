"""A process stopped with durable tasks queued behind a long task, under the **default strategy**
(an ordinary response's batch runs inline in the body's ``close()``): every durable task spills
to Celery before the process goes, and each runs exactly once, on the Celery worker.

Real parts: a redis-server and a Celery worker (tests/servers/durable_parts.py's fixtures),
each server as a subprocess stopped by SIGTERM as a service manager would. waitress keeps every
default (a 10 s grace); the gunicorn workers get a 1.5 s grace to keep the suite short (gunicorn's
own ``graceful_timeout`` is 15 s: the grace must end before it, and does).
"""
# The fixtures are imported from tests/servers/durable_parts.py; a test's argument of the same name
# is pytest's injection, not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import dataclasses
import time

import pytest

from tests.servers.contract import read_task_log, wait_for_marker
from tests.servers.durable_parts import (  # noqa: F401  (fixtures)
    DELIVERY_TIMEOUT,
    DUPLICATE_WINDOW,
    KEYS_ENV,
    Worker,
    broker_url,
    stub_server,
    worker,
)
from tests.servers.probe_app import DURABLE_LOG
from tests.servers.servers import (
    GUNICORN_GTHREAD,
    GUNICORN_SYNC,
    WAITRESS,
    ServerSpec,
    fetch,
    poll,
    running_server,
    terminate,
)

pytestmark = pytest.mark.servers

DEFAULT_GRACE = 10.0
SHORT_GRACE = 1.5
DURABLE_TASKS = 3
CASES = {
    # server: (spec, grace set in the environment or None for the default, the long task's seconds)
    "waitress": (WAITRESS, None, DEFAULT_GRACE + 4),
    "gunicorn-sync": (GUNICORN_SYNC, SHORT_GRACE, 4.0),
    "gunicorn-gthread": (GUNICORN_GTHREAD, SHORT_GRACE, 4.0),
}


def spec_for(name: str, celery: Worker) -> tuple[ServerSpec, float]:
    spec, grace, seconds = CASES[name]
    env = {"APP_DEFERRED_TASK_BROKER_URL": celery.broker_url, **KEYS_ENV}
    if grace is not None:
        env["APP_DEFERRED_TASK_SHUTDOWN_GRACE_SECONDS"] = str(grace)
    return dataclasses.replace(spec, name=f"{spec.name}-durable-stop", env=env), seconds


@pytest.mark.parametrize("name", list(CASES))
def test_sigterm_spills_durable_tasks_queued_behind_an_inline_task_and_each_runs_once(name, worker):
    spec, seconds = spec_for(name, worker)
    rid = f"stop{name.replace('-', '')}"
    with running_server(spec, worker.probe_dir) as server:
        response = fetch(server.port, f"/probe/durable?rid={rid}&seconds={seconds}&tasks={DURABLE_TASKS}"
                                      "&size=small")
        assert response.status == 200
        wait_for_marker(server, f"{rid}.started", timeout=10)
        signalled = time.monotonic()
        code = terminate(server, timeout=seconds + 10)
        stopped_in = time.monotonic() - signalled
        assert code == 0, server.log_text()
        task_log = read_task_log(server)

    durable_log = worker.probe_dir / DURABLE_LOG

    def runs() -> list[list[str]]:
        text = durable_log.read_text() if durable_log.exists() else ""
        return [line.split() for line in text.splitlines() if line.startswith(f"{rid} ")]

    assert poll(lambda: len(runs()) >= DURABLE_TASKS, timeout=DELIVERY_TIMEOUT), f"{task_log}\n{worker.log()}"
    time.sleep(DUPLICATE_WINDOW)
    assert sorted(index for _, index, _ in runs()) == [str(i) for i in range(DURABLE_TASKS)]  # once each
    assert {int(pid) for _, _, pid in runs()} == {worker.process.pid}  # all on the Celery worker
    for index in range(DURABLE_TASKS):
        assert f"Spilled deferred task probe.durable.{index} to Celery (shutdown: still queued" in task_log
    assert stopped_in < seconds + 5, "the server did not stop once its batch was decided"

"""gunicorn sync, --timeout 3, budget 10, shipped gunicorn.conf.py: the hard limit keeps the worker alive.

The sync worker's heartbeat stops while a request (its close() included) runs; the arbiter
kills it after ``--timeout``. gunicorn.conf.py gives the app a hard limit of timeout minus a
margin (3 - 1 = 2 s), so a 5 s task is skipped and logged at NOTICE instead of getting the
worker killed. The negative control (test_gunicorn_timeout_control.py) shows the kill.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator

import pytest

from tests.servers.contract import BODY_BOUND_SECONDS, read_marker, wait_for_log, wait_for_marker
from tests.servers.servers import GUNICORN_SYNC, RunningServer, fetch, gunicorn_argv, running_server

pytestmark = pytest.mark.servers

GUNICORN_TIMEOUT = 3
EXPECTED_HARD_LIMIT = 2.0  # config.gunicorn_server.hard_limit_for(3): 3 s minus the 1 s minimum margin
GUNICORN_SYNC_TIMEOUT_3 = dataclasses.replace(
    GUNICORN_SYNC,
    name="gunicorn-sync-timeout-3",
    argv=gunicorn_argv("--worker-class", "sync", "--threads", "1", timeout=GUNICORN_TIMEOUT),
    env={"APP_DEFERRED_TASK_BUDGET_SECONDS": "10"},
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    spec = GUNICORN_SYNC_TIMEOUT_3
    with running_server(spec, tmp_path_factory.mktemp(spec.name)) as running:
        yield running


def worker_pid(server: RunningServer) -> int:
    pid: int = json.loads(fetch(server.port, "/probe/pid").body)["pid"]
    return pid


def test_a_task_longer_than_the_timeout_is_skipped_and_logged_instead_of_killing_the_worker(
    server: RunningServer,
) -> None:
    pid = worker_pid(server)

    response = fetch(server.port, "/probe/sleep?rid=too-long&seconds=5&cost=5")

    assert response.status == 200 and response.seconds_to_body < BODY_BOUND_SECONDS
    skipped = "Skipped deferred task probe.sleep.too-long "
    log = wait_for_log(server, lambda text: skipped in text)
    [line] = [entry for entry in log.splitlines() if skipped in entry]
    assert "| NOTICE " in line
    # The budget left is what the hard limit leaves of the request, not the budget of 10 s.
    left = float(re.search(r"> ([0-9.]+)s of budget left", line).group(1))  # type: ignore[union-attr]
    assert EXPECTED_HARD_LIMIT - 0.5 < left <= EXPECTED_HARD_LIMIT
    # The same worker answers at once: it was neither busy for 5 s nor killed.
    assert worker_pid(server) == pid
    assert read_marker(server, "too-long") is None
    assert "WORKER TIMEOUT" not in server.log_text()


def test_a_task_that_fits_under_the_hard_limit_still_runs(server: RunningServer) -> None:
    pid = worker_pid(server)

    response = fetch(server.port, "/probe/sleep?rid=fits&seconds=0.5&cost=1")

    assert response.status == 200 and response.seconds_to_body < BODY_BOUND_SECONDS
    marker = wait_for_marker(server, "fits")
    assert marker["pid"] == pid == worker_pid(server)
    assert "WORKER TIMEOUT" not in server.log_text()

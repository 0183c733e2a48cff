"""Negative control: without the hard limit, gunicorn --timeout 3 kills a sync worker mid-task.

``APP_DEFERRED_TASK_HARD_LIMIT_SECONDS=0`` is set, so gunicorn.conf.py leaves it alone (the
variable always wins): the same 5 s task fits the budget of 10, runs in ``close()``, the
heartbeat stops, and the arbiter aborts the worker; the task never finishes. This is what
test_gunicorn_timeout.py guards against, and proves that test can tell.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest

from tests.servers.contract import read_marker
from tests.servers.servers import RunningServer, fetch, poll, running_server
from tests.servers.test_gunicorn_timeout import GUNICORN_SYNC_TIMEOUT_3

pytestmark = pytest.mark.servers

KILL_TIMEOUT = 8.0  # --timeout 3, the arbiter's 1 s check, a new worker's boot

NO_HARD_LIMIT = dataclasses.replace(
    GUNICORN_SYNC_TIMEOUT_3,
    name="gunicorn-sync-timeout-3-no-hard-limit",
    env={**GUNICORN_SYNC_TIMEOUT_3.env, "APP_DEFERRED_TASK_HARD_LIMIT_SECONDS": "0"},
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(NO_HARD_LIMIT, tmp_path_factory.mktemp(NO_HARD_LIMIT.name)) as running:
        yield running


def test_without_the_hard_limit_the_worker_is_killed_and_the_task_lost(server: RunningServer) -> None:
    pid = json.loads(fetch(server.port, "/probe/pid").body)["pid"]

    assert fetch(server.port, "/probe/sleep?rid=killed&seconds=5&cost=5").status == 200

    assert poll(lambda: "WORKER TIMEOUT" in server.log_text(), timeout=KILL_TIMEOUT)
    new_pid = json.loads(fetch(server.port, "/probe/pid", timeout=KILL_TIMEOUT).body)["pid"]
    assert new_pid != pid
    assert read_marker(server, "killed") is None

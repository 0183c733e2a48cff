"""SIGTERM while batches run in the hand-off worker: they drain within the grace period, or
whatever cannot run is logged at ERROR by name. Nothing is lost silently.

Each test stops its own server. waitress hands off a streamed body (no Content-Length) under the
default strategy; gunicorn gthread hands off every batch under ``APP_DEFERRED_TASK_STRATEGY=thread``.
One hand-off thread: the first request's batch runs, the second one waits in the queue.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers.contract import BODY_BOUND_SECONDS, read_marker, read_task_log, wait_for_marker
from tests.servers.servers import (
    GUNICORN_GTHREAD,
    WAITRESS,
    RunningServer,
    ServerSpec,
    fetch,
    running_server,
    terminate,
)

pytestmark = pytest.mark.servers

STEP_SECONDS = 0.5
STEPS = 3
LONG_GRACE = 10.0
SHORT_GRACE = 0.5
CLEAN_EXIT = 0
"""gunicorn's graceful stop exits 0; so does waitress, whose loop catches the SystemExit that
hooks.lifecycle raises for SIGTERM and shuts down cleanly. Either way the interpreter then runs
its atexit hooks, where the hand-off worker drains."""
SERVERS = {
    "waitress": (WAITRESS, {}),
    "gunicorn-gthread": (GUNICORN_GTHREAD, {"APP_DEFERRED_TASK_STRATEGY": "thread"}),
}


def spec_for(name: str, grace: float) -> ServerSpec:
    spec, env = SERVERS[name]
    return dataclasses.replace(
        spec,
        name=f"{spec.name}-grace-{grace}",
        env={
            **env,
            "APP_DEFERRED_TASK_WORKER_THREADS": "1",
            "APP_DEFERRED_TASK_SHUTDOWN_GRACE_SECONDS": str(grace),
        },
    )


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[str, float], RunningServer]]:
    """Starts servers for one test; stops whatever is still running at its end."""
    with contextlib.ExitStack() as stack:

        def start_server(name: str, grace: float) -> RunningServer:
            spec = spec_for(name, grace)
            directory = tmp_path / spec.name
            directory.mkdir()
            return stack.enter_context(running_server(spec, directory))

        yield start_server


def hand_off_two_batches(server: RunningServer, seconds: float) -> None:
    """A running batch of ``STEPS`` tasks and a queued batch of one; both clients served at once."""
    running = fetch(server.port, f"/probe/sleep?rid=running&seconds={seconds}&tasks={STEPS}&size=stream")
    wait_for_marker(server, "running.started", timeout=5)
    queued = fetch(server.port, f"/probe/sleep?rid=queued&seconds={seconds}&size=stream")
    for response in (running, queued):
        assert response.status == 200 and response.seconds_to_body < BODY_BOUND_SECONDS


ALL_TASKS = ["running", "running-1", "running-2", "queued"]


@pytest.mark.parametrize("name", list(SERVERS))
def test_sigterm_lets_queued_and_running_batches_finish_within_the_grace_period(start, name) -> None:
    server = start(name, LONG_GRACE)
    hand_off_two_batches(server, STEP_SECONDS)

    signalled = time.time()
    code = terminate(server, timeout=LONG_GRACE + 5)

    assert code == CLEAN_EXIT, server.log_text()
    markers = {task: read_marker(server, task) for task in ALL_TASKS}
    assert all(markers.values()), f"tasks lost at shutdown: {[t for t, m in markers.items() if not m]}"
    assert any(marker["finished"] > signalled for marker in markers.values() if marker)
    assert "| ERROR " not in read_task_log(server)


@pytest.mark.parametrize("name", list(SERVERS))
def test_sigterm_logs_by_name_what_could_not_run_within_a_short_grace(start, name) -> None:
    server = start(name, SHORT_GRACE)
    hand_off_two_batches(server, 1.5)

    signalled = time.monotonic()
    code = terminate(server)
    stopped_in = time.monotonic() - signalled

    assert code == CLEAN_EXIT, server.log_text()
    assert stopped_in < SHORT_GRACE + 3.0, "the worker did not give up after its grace period"
    [error] = [line for line in read_task_log(server).splitlines() if "| ERROR " in line]
    assert f"within the {SHORT_GRACE}s grace period" in error
    for name_in_log in [
        "probe.sleep.running (still running)",
        "probe.sleep.running-1",
        "probe.sleep.running-2",
        "probe.sleep.queued",
    ]:
        assert name_in_log in error
    assert read_marker(server, "running-1") is None and read_marker(server, "queued") is None

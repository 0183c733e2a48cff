"""Reliability II on real servers: whatever a task raises is its failure, a hung task is named,
and a batch cut by shutdown is named. Each test starts and stops its own server."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers.contract import read_marker, read_task_log, wait_for_log, wait_for_marker
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

SERVERS = {"waitress": WAITRESS, "gunicorn-gthread": GUNICORN_GTHREAD}
KINDS = ("KeyboardInterrupt", "SystemExit", "GeneratorExit")
REQUESTS_PER_KIND = 4


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    with contextlib.ExitStack() as stack:

        def start_server(name: str, **env: str) -> RunningServer:
            spec: ServerSpec = dataclasses.replace(SERVERS[name], name=f"{name}-reliability", env=env)
            directory = tmp_path / spec.name
            directory.mkdir()
            return stack.enter_context(running_server(spec, directory))

        yield start_server


@pytest.mark.parametrize("name", list(SERVERS))
def test_a_task_raising_any_base_exception_leaves_the_worker_and_its_connection_alive(start, name):
    server = start(name)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)  # one keep-alive
    pids: set[int] = set()
    try:
        for kind in KINDS:
            for index in range(REQUESTS_PER_KIND):
                rid = f"{kind}-{index}"
                connection.request("GET", f"/probe/raise?rid={rid}&kind={kind}")
                response = connection.getresponse()
                assert response.status == 200
                pids.add(json.loads(response.read())["pid"])
                wait_for_marker(server, rid, timeout=5)  # the next task ran
    finally:
        connection.close()
    assert len(pids) == 1, f"worker processes came and went: {sorted(pids)}"
    log = read_task_log(server)
    for kind in KINDS:
        assert log.count(f"probe.raise.{kind}-") >= REQUESTS_PER_KIND  # each failure logged by name
    assert server.process.poll() is None


def test_a_task_hung_far_past_its_cost_is_named_with_its_stack(start):
    server = start("waitress", APP_DEFERRED_TASK_STRATEGY="thread")
    response = fetch(server.port, "/probe/sleep?rid=hung&seconds=30&cost=0.5")
    assert response.status == 200
    log = wait_for_log(server, lambda text: "probe.sleep.hung is still running" in text, timeout=10)
    [line] = [line for line in log.splitlines() if "probe.sleep.hung is still running" in line]
    assert "| WARNING " in line and "declared 0.5s" in line
    assert "sleep_then_mark" in log  # the thread's current stack: where it is stuck


def test_sigterm_names_an_inline_batch_it_cuts(start):
    """waitress runs a body with a Content-Length's batch inline in close(); SIGTERM must not cut
    it without a word."""
    server = start("waitress")
    response = fetch(server.port, "/probe/sleep?rid=inline&seconds=20&cost=21&tasks=2")
    assert response.status == 200
    wait_for_marker(server, "inline.started", timeout=5)
    signalled = time.monotonic()
    terminate(server, timeout=15)
    assert time.monotonic() - signalled < 15
    errors = [line for line in read_task_log(server).splitlines() if "| ERROR " in line]
    named = [line for line in errors if "probe.sleep.inline (still running)" in line]
    assert named and "probe.sleep.inline-1" in named[0], errors
    assert read_marker(server, "inline") is None

"""Negative control: the isolation check does catch a runner shared between requests.

The probe app swaps the per-request runner for one process-wide Singleton (still reset at
every request start, as the hook does); views that look it up through the container then
hand their tasks to whichever request reset it last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tests.servers.contract import (
    ISOLATION_REQUESTS,
    fire_isolation_requests,
    has_leak,
    isolation_problems,
    wait_for_isolation_lines,
)
from tests.servers.probe_app import ISOLATION_TASKS, RUNNER_SCOPE_ENV
from tests.servers.servers import WAITRESS, RunningServer, running_server

pytestmark = pytest.mark.servers

SHARED_RUNNER_WAITRESS = dataclasses.replace(
    WAITRESS, name="waitress-shared-runner", env={RUNNER_SCOPE_ENV: "shared"}
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    spec = SHARED_RUNNER_WAITRESS
    with running_server(spec, tmp_path_factory.mktemp(spec.name)) as running:
        yield running


def test_a_shared_runner_is_detected(server: RunningServer) -> None:
    rids = [f"r{n:03d}" for n in range(ISOLATION_REQUESTS)]

    fire_isolation_requests(server, rids)

    # Stop as soon as a task is seen at the end of a foreign request (or when all lines are in).
    lines = wait_for_isolation_lines(
        server, lambda found: has_leak(found) or len(found) >= ISOLATION_REQUESTS * ISOLATION_TASKS
    )
    assert isolation_problems(rids, lines), "the isolation check missed a runner shared between requests"

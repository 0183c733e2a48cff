"""Hand-off queue full (1 thread, queue of 1) on waitress: back-pressure, never a drop.

Three streamed bodies (no Content-Length: hand-off under the default strategy): the first
batch runs on the one hand-off thread, the second waits in the queue, the third finds the
queue full and runs inline in ``close()`` — its client waits for it (logged at WARNING) — and
every task runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tests.servers.contract import BODY_BOUND_SECONDS, read_task_log, wait_for_marker
from tests.servers.servers import WAITRESS, RunningServer, fetch, running_server

pytestmark = pytest.mark.servers

TASK_SECONDS = 1.5
ONE_SLOT = dataclasses.replace(
    WAITRESS,
    name="waitress-handoff-1-thread-queue-1",
    env={"APP_DEFERRED_TASK_WORKER_THREADS": "1", "APP_DEFERRED_TASK_WORKER_QUEUE_SIZE": "1"},
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(ONE_SLOT, tmp_path_factory.mktemp(ONE_SLOT.name)) as running:
        yield running


def streamed(server: RunningServer, rid: str) -> float:
    response = fetch(server.port, f"/probe/sleep?rid={rid}&seconds={TASK_SECONDS}&size=stream")
    assert response.status == 200 and response.framing == "chunked"
    return response.seconds_to_body


def test_a_full_queue_makes_the_client_wait_with_a_warning_and_drops_nothing(server: RunningServer) -> None:
    assert streamed(server, "first") < BODY_BOUND_SECONDS
    wait_for_marker(server, "first.started", timeout=5)  # the one hand-off thread is now busy
    assert streamed(server, "queued") < BODY_BOUND_SECONDS  # the one queue slot

    waited = streamed(server, "overflow")

    assert waited >= TASK_SECONDS, "with the queue full, the batch must run inline (back-pressure)"
    markers = {rid: wait_for_marker(server, rid) for rid in ("first", "queued", "overflow")}
    assert markers["first"]["thread"] == markers["queued"]["thread"] == "deferred-task-0"
    assert not markers["overflow"]["thread"].startswith("deferred-task-")
    log = read_task_log(server)
    warnings = [line for line in log.splitlines() if "| WARNING " in line]
    assert len(warnings) == 1 and "Hand-off queue full" in warnings[0], warnings
    assert "via inline (hand-off queue full): probe.sleep.overflow" in log

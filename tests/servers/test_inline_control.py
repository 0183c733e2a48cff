"""Negative control: the "body before the task" timing does catch a batch run before the response.

``APP_DEFERRED_TASK_ENABLED=false`` makes the add-on run each request's tasks inline, before the
view's response leaves Pyramid (its documented disabled mode). The same deliveries as the
contract's (100 B, 1 MiB, a stream, a stream over HTTP/1.0, each deferring a 1.5 s task) must
then show the client waiting for the task, and the contract's own assertion must fail on them:
this is what test_waitress.py and the other server modules guard against, and proves they can tell.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tests.servers.contract import BODY_BOUND_SECONDS, BODY_KINDS, TASK_SECONDS, Delivery, ResponseBeforeTasks
from tests.servers.probe_app import BODIES
from tests.servers.servers import WAITRESS, RunningServer, running_server

pytestmark = pytest.mark.servers

INLINE_WAITRESS = dataclasses.replace(
    WAITRESS, name="waitress-inline", env={"APP_DEFERRED_TASK_ENABLED": "false"}
)
CLOCK_SLACK = 0.05
"""Seconds of disagreement allowed between the client's and the task's time.time() (same host)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(INLINE_WAITRESS, tmp_path_factory.mktemp(INLINE_WAITRESS.name)) as running:
        yield running


@pytest.mark.parametrize("label", list(BODY_KINDS))
def test_with_the_batch_run_inline_the_client_waits_for_the_task(
    deliveries: dict[str, Delivery], label: str
) -> None:
    response, marker = deliveries[label].response, deliveries[label].marker

    assert response.status == 200 and response.body == BODIES[BODY_KINDS[label].size]
    assert response.seconds_to_body >= TASK_SECONDS - CLOCK_SLACK > BODY_BOUND_SECONDS, (
        f"the client had the body after {response.seconds_to_body:.3f}s: the task did not run before it"
    )
    assert marker["finished"] <= response.complete_at + CLOCK_SLACK


@pytest.mark.parametrize("label", list(BODY_KINDS))
def test_the_contracts_timing_check_fails_on_it(deliveries: dict[str, Delivery], label: str) -> None:
    with pytest.raises(AssertionError, match="the deferred task ran before the response was complete"):
        ResponseBeforeTasks().test_client_has_the_body_before_the_deferred_task_runs(deliveries, label)

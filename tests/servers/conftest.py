"""Show each server's output in the report of a failed test; the contract's module-wide requests.

Each test module starts one server (its ``server`` fixture); the fixtures below send the
contract's requests to it once per module, and its tests assert on the results.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.servers.contract import Delivery, deliver_bodies, fire_edge_requests
from tests.servers.servers import RawResponse, RunningServer


@pytest.fixture(scope="module")
def deliveries(server: RunningServer) -> dict[str, Delivery]:
    return deliver_bodies(server)


@pytest.fixture(scope="module")
def edge_responses(server: RunningServer) -> dict[str, RawResponse]:
    return fire_edge_requests(server)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, RunningServer):
                report.sections.append((f"{value.spec.name} output ({value.log_path})", value.log_text()))
    return report

"""Show each server's output in the report of a failed test; the contract's module-wide requests.

Each test module starts one server (its ``server`` fixture); the fixtures below send the
contract's requests to it once per module, and its tests assert on the results.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tests.servers.contract import Delivery, deliver_bodies, fire_edge_requests
from tests.servers.servers import RawResponse, RunningServer


@pytest.fixture(scope="module")
def deliveries(server: RunningServer) -> dict[str, Delivery]:
    return deliver_bodies(server)


@pytest.fixture(scope="module")
def edge_responses(server: RunningServer) -> dict[str, RawResponse]:
    return fire_edge_requests(server)


STRESS_FIGURES: list[tuple[str, object]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        figures = [value for key, value in report.user_properties if key == "stress"]
        STRESS_FIGURES.extend((report.nodeid, value) for value in figures)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The stress runs' figures (tests/servers/stress.py), printed with every run that has them."""
    if STRESS_FIGURES:
        terminalreporter.section("stress figures")
        for nodeid, figures in STRESS_FIGURES:
            terminalreporter.line(f"{nodeid.split('::')[0]}: {figures}")


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

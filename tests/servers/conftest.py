"""Show each server's output in the report of a test that failed while using it."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.servers.servers import RunningServer


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

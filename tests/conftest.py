from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from config.logging import ensure_notice_level, patch_record
from tests.loguru_capture import LogCapture, add_on_records_in_loguru
from tests.secret_guard import GUARD

# The add-on's pytest plugin is opt-in, as for any app that uses it; pytester runs plugin tests.
pytest_plugins = ["pyramid_deferred.pytest_plugin", "pytester"]

LAST_TEST_MODULE = "test_secrets_session.py"
"""Asserts what the secret guard saw over the whole run: collected last (see below)."""


def pytest_configure(config: pytest.Config) -> None:
    GUARD.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    GUARD.uninstall()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The session-wide secret check runs after every other test, the real servers' included."""
    items.sort(key=lambda item: item.path.name == LAST_TEST_MODULE)


FIGURES = ("stress", "faults", "secrets", "slow_reader")
"""``record_property`` keys whose values the terminal summary shows (docs/reliability.md quotes them)."""
_figures: list[tuple[str, str, object]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        found = [(key, value) for key, value in report.user_properties if key in FIGURES]
        _figures.extend((key, report.nodeid, value) for key, value in found)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The stress runs' and the fault matrix's measured figures, printed with every run."""
    if _figures:
        terminalreporter.section("figures")
        for key, nodeid, value in _figures:
            label = nodeid[nodeid.index("[") + 1 : -1] if "[" in nodeid else Path(nodeid.split("::")[0]).stem
            terminalreporter.line(f"{key} {label}: {value}")


@pytest.fixture(autouse=True)
def no_secret_in_any_log_line(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test during which a test secret, or a test customer's personal data, reached a log
    record (loguru or stdlib)."""
    before, personal_before = len(GUARD.leaks), len(GUARD.personal_data_leaks)
    yield
    leaks = GUARD.leaks[before:]
    assert not leaks, "secret values reached the logs:\n" + "\n".join(
        f"{leak.where}: {leak.secrets} in {leak.text[:300]!r}" for leak in leaks
    )
    personal = GUARD.personal_data_leaks[personal_before:]
    assert not personal, "personal data reached the logs:\n" + "\n".join(
        f"{leak.where}: {leak.secrets} in {leak.text[:300]!r}" for leak in personal
    )


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every loguru record of the test, the add-on's (stdlib, bridged) included, DEBUG too."""
    ensure_notice_level()
    logger.configure(patcher=patch_record)  # as the app's logging set-up does (config/logging.py)
    capture = LogCapture()
    handler_id = logger.add(capture, level=0, format="{message}")
    with add_on_records_in_loguru():
        yield capture
    with contextlib.suppress(ValueError):  # an app built during the test reconfigured loguru
        logger.remove(handler_id)

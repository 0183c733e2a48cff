"""Fixtures of the add-on's own tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger

from pyramid_deferred.core.log import ensure_notice_level

pytest_plugins = ["pyramid_deferred.pytest_plugin", "pytester"]


class LogCapture:
    """Every loguru record written while the fixture is active."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def __call__(self, message: Any) -> None:
        self.records.append(message.record)

    def at(self, level: str) -> list[str]:
        return [r["message"] for r in self.records if r["level"].name == level]

    def matching(self, text: str) -> list[Any]:
        return [r for r in self.records if text in r["message"]]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    ensure_notice_level()
    capture = LogCapture()
    handler_id = logger.add(capture, level=0, format="{message}")
    yield capture
    with contextlib.suppress(ValueError):
        logger.remove(handler_id)

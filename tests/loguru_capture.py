"""What the shop's tests assert on: every loguru record, the add-on's included, as the shop's
logging set-up brings them there (``config/logging.py``: stdlib routed into loguru)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from pyramid_deferred.core.log import LOGGER_NAME

from config.logging import InterceptHandler, ensure_notice_level


class LogCapture:
    """Every loguru record written while it is a sink (``logger.add(capture, level=0)``): for
    tests that assert what was logged, at which level, with which ``extra``."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def __call__(self, message: Any) -> None:
        self.records.append(message.record)

    def at(self, level: str) -> list[str]:
        return [r["message"] for r in self.records if r["level"].name == level]

    def matching(self, text: str) -> list[Any]:
        return [r for r in self.records if text in r["message"]]


@contextlib.contextmanager
def add_on_records_in_loguru() -> Iterator[None]:
    """The bridge the shop installs at start-up (loguru's ``InterceptHandler`` on stdlib's root),
    unless one is there already, with the add-on's logger at DEBUG: every record it writes reaches
    loguru, as a sink at level 0 expects. Both undone afterwards."""
    ensure_notice_level()  # the bridge maps the add-on's NOTICE records to loguru's NOTICE
    root = logging.getLogger()
    add_on = logging.getLogger(LOGGER_NAME)
    bridge = None
    if not any(isinstance(handler, InterceptHandler) for handler in root.handlers):
        bridge = InterceptHandler()
        root.addHandler(bridge)
    previous_level = add_on.level
    add_on.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        add_on.setLevel(previous_level)
        if bridge is not None:
            root.removeHandler(bridge)

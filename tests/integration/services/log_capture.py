"""Everything loguru and stdlib logging emit during a test, to assert on."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from loguru import logger


@dataclass
class LogCapture:
    records: list[dict[str, object]] = field(default_factory=list)
    serialized: list[str] = field(default_factory=list)
    stdlib: list[logging.LogRecord] = field(default_factory=list)

    def messages(self, level: str | None = None, service: str | None = None) -> list[str]:
        return [
            str(r["message"])
            for r in self.records
            if (level is None or r["level"] == level)
            and (service is None or r["extra"].get("service") == service)  # type: ignore[attr-defined]
        ]

    @property
    def text(self) -> str:
        """All output, with extras, exceptions and stdlib records: what a sink could write."""
        stdlib = [
            f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.exc_info!r}" for r in self.stdlib
        ]
        return "\n".join(self.serialized + stdlib)


class _StdlibCollector(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(level=0)
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        self._into.append(record)


@contextmanager
def capture_logs() -> Iterator[LogCapture]:
    capture = LogCapture()

    def keep(message: object) -> None:
        record = message.record  # type: ignore[attr-defined]
        capture.records.append(
            {"level": record["level"].name, "message": record["message"], "extra": record["extra"]}
        )
        capture.serialized.append(str(message))

    sink = logger.add(keep, level="TRACE", serialize=True, backtrace=True, diagnose=True)
    root = logging.getLogger()
    collector = _StdlibCollector(capture.stdlib)
    previous_level = root.level
    root.addHandler(collector)
    root.setLevel(0)
    try:
        yield capture
    finally:
        root.removeHandler(collector)
        root.setLevel(previous_level)
        logger.remove(sink)

"""Loguru, configured once at start-up; stdlib logging (Pyramid, waitress, gunicorn) routed into it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

from loguru import logger
from pyramid_deferred.core.log import CHANNEL, ensure_notice_level
from pyramid_deferred.request_id import current_request_id

if TYPE_CHECKING:
    from loguru import Record

CONSOLE_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "{extra[channel]} | {extra[request_id]} | <level>{message}</level>"
)
FILE_FORMAT = (
    "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {process}:{thread.name} | {extra[request_id]} | {message}"
)
NO_REQUEST_ID = "-"
"""What ``{extra[request_id]}`` shows for lines written outside a request's run (start-up, say)."""
STDLIB_LOGGERS = ("gunicorn", "gunicorn.error", "gunicorn.access", "waitress", "pyramid")
_CONTROL_ESCAPES = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
    if code != ord("\t")
}
"""Control characters and every character ``str.splitlines()`` breaks at, but the tab."""


def patch_record(record: Record) -> None:
    """The patcher of every record: the request's id, then one line (see :func:`one_line`)."""
    if record["extra"].get("request_id", NO_REQUEST_ID) == NO_REQUEST_ID:
        record["extra"]["request_id"] = current_request_id() or NO_REQUEST_ID
    one_line(record)


def one_line(record: Record) -> None:
    """Patcher of every record: control characters in the message are written escaped (``\\x0a``),
    so that request-provided text (a user agent in a dry-run payload, a path a server logs
    percent-decoded) cannot start a line of its own or send terminal escapes. Tracebacks are
    not part of the message and keep their lines."""
    record["message"] = record["message"].translate(_CONTROL_ESCAPES)


class InterceptHandler(logging.Handler):
    """loguru's documented recipe: re-emit a stdlib record through loguru, keeping its caller."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame: FrameType | None = logging.currentframe()
        depth = 2
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame, depth = frame.f_back, depth + 1
        logger.bind(channel=record.name).opt(depth=depth, exception=record.exc_info).log(
            level, record.getMessage()
        )


def is_deferred_task_record(record: Record) -> bool:
    return bool(record["extra"].get("channel") == CHANNEL)


def add_console_sink(level: str) -> int:
    """Reset loguru to one stderr sink at ``level`` (every channel); returns the sink's id."""
    ensure_notice_level()
    logger.remove()
    logger.configure(extra={"channel": "app", "request_id": NO_REQUEST_ID}, patcher=patch_record)
    return logger.add(sys.stderr, level=level, format=CONSOLE_FORMAT, backtrace=False, diagnose=False)


def route_stdlib_logging(names: tuple[str, ...] = STDLIB_LOGGERS) -> None:
    """Send stdlib ``logging`` (the root logger and the servers' own loggers) into loguru."""
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    for name in names:
        stdlib_logger = logging.getLogger(name)
        stdlib_logger.handlers = [InterceptHandler()]
        stdlib_logger.propagate = False


def setup_logging(
    *, threshold: str, max_files: int, path: str, app_log_level: str = "INFO"
) -> Iterator[None]:
    """A dependency-injector Resource: configure on init, flush the file sink on shutdown."""
    add_console_sink(app_log_level)
    file_sink = logger.add(
        path,
        level=threshold,
        filter=is_deferred_task_record,
        format=FILE_FORMAT,
        rotation="00:00",
        retention=max_files,
        encoding="utf-8",
        backtrace=False,
        diagnose=False,
    )
    route_stdlib_logging()
    yield
    logger.remove(file_sink)

"""Loguru, configured once at start-up; stdlib logging (Pyramid, waitress, gunicorn, and the
pyramid_deferred add-on, which logs through stdlib as Pyramid add-ons do) routed into it."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

from loguru import logger
from pyramid_deferred.core.log import CHANNEL, NOTICE, NOTICE_NAME
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


def ensure_notice_level() -> None:
    """loguru's NOTICE, at the add-on's number (25, between INFO and WARNING): the level of a
    skipped task, a sink's threshold (``deferred_task.log_threshold = NOTICE``)."""
    try:
        logger.level(NOTICE_NAME)
    except ValueError:
        logger.level(NOTICE_NAME, no=NOTICE, color="<cyan><bold>", icon="!")


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
    """loguru's documented recipe: re-emit a stdlib record through loguru, keeping its caller.

    The level by name (NOTICE included); the record's ``channel`` (the add-on's
    ``DEFERRED_TASK``, else the logger's name) and ``request_id`` (else ``patch_record`` finds
    the current one) into ``extra``, where the sinks' filters and formats read them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # The first frame outside logging (its module, or an import's frozen frames) logged it.
        frame: FrameType | None = inspect.currentframe()
        depth = 0
        while frame is not None:
            filename = frame.f_code.co_filename
            inside = filename == logging.__file__ or ("importlib" in filename and "_bootstrap" in filename)
            if depth > 0 and not inside:
                break
            frame, depth = frame.f_back, depth + 1
        extra = record.__dict__
        logger.bind(
            channel=extra.get("channel", record.name), request_id=extra.get("request_id", NO_REQUEST_ID)
        ).opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def is_deferred_task_record(record: Record) -> bool:
    return bool(record["extra"].get("channel") == CHANNEL)


def add_console_sink(level: str) -> int:
    """Reset loguru to one stderr sink at ``level`` (every channel); returns the sink's id."""
    ensure_notice_level()
    logger.remove()
    logger.configure(extra={"channel": "app", "request_id": NO_REQUEST_ID}, patcher=patch_record)
    return logger.add(sys.stderr, level=level, format=CONSOLE_FORMAT, backtrace=False, diagnose=False)


def lowest_level(*levels: str) -> int:
    """The number of the lowest of these loguru level names."""
    ensure_notice_level()
    return min(logger.level(level).no for level in levels)


def route_stdlib_logging(level: int = 0, names: tuple[str, ...] = STDLIB_LOGGERS) -> None:
    """Send stdlib ``logging`` (the root logger and the servers' own loggers) into loguru.

    The root's ``level``: loguru's README says 0; the shop passes the lowest level one of its sinks
    takes, so that ``isEnabledFor`` stays meaningful: a record no sink would write (the add-on's
    per-task DEBUG lines, a library's DEBUG chatter) is never built, bridged and dropped."""
    logging.basicConfig(handlers=[InterceptHandler()], level=level, force=True)
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
    route_stdlib_logging(lowest_level(app_log_level, threshold))
    yield
    logger.remove(file_sink)

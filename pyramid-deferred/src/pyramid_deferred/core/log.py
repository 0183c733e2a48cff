"""The DEFERRED_TASK loguru channel, the NOTICE level the spec logs skips at, and tracebacks
without local variables."""

from __future__ import annotations

import traceback
from collections.abc import Callable

from loguru import logger

CHANNEL = "DEFERRED_TASK"
NOTICE = "NOTICE"
NOTICE_NO = 25  # between INFO (20) and WARNING (30), as in syslog and Monolog


def ensure_notice_level() -> None:
    try:
        logger.level(NOTICE)
    except ValueError:
        logger.level(NOTICE, no=NOTICE_NO, color="<cyan><bold>", icon="!")


ensure_notice_level()

deferred_task_logger = logger.bind(channel=CHANNEL)


class TaskTraceback(Exception):
    """A task's failure as text: what :func:`without_locals` logs in place of the exception."""


def without_locals(
    error: BaseException, scrub: Callable[[str], str] = str
) -> tuple[type[TaskTraceback], TaskTraceback, None]:
    """``logger.opt(exception=without_locals(error))``: the traceback of ``error`` formatted by
    :mod:`traceback` (file, line and code of each frame, never a variable's value), as an
    exception with no frames of its own. Logged as the exception itself, a sink with loguru's
    ``diagnose=True`` (its default) would print every frame's local variables: a durable task's
    arguments, a buyer's e-mail among them. ``scrub`` masks the text (a URL's password)."""
    text = scrub("".join(traceback.format_exception(error)).rstrip())
    return TaskTraceback, TaskTraceback(text), None

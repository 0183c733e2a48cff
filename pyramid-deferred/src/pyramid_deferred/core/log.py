"""The add-on's logging: stdlib loggers under ``pyramid_deferred``, as every Pyramid add-on has,
so that the host app's configuration (its .ini file's ``[loggers]``) decides what is written,
where and how. The add-on adds no handler, sets no level and never calls ``basicConfig``.

Each module logs through ``get_logger(__name__)``: a plain ``logging.Logger`` whose records (and
only those, once a handler takes them) get two attributes from a filter, ``channel``
(``"DEFERRED_TASK"``) and ``request_id`` (the id of the request or batch being handled, else
``"-"``), for a formatter's ``%(request_id)s`` or a bridge into loguru. A filter, not a
``LoggerAdapter``: it runs after ``isEnabledFor`` has let a record through, so a call nobody
takes costs what any stdlib call costs, and the modules use the ordinary ``Logger`` API.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from contextvars import ContextVar

LOGGER_NAME = "pyramid_deferred"
"""The add-on's logger; each module logs on a child (``pyramid_deferred.core.runner``, ...)."""
CHANNEL = "DEFERRED_TASK"
NOTICE = 25
"""Between INFO (20) and WARNING (30), as in syslog: a skipped task. Registered as ``NOTICE``."""
NOTICE_NAME = "NOTICE"
NO_REQUEST_ID = "-"
"""``record.request_id`` outside any request (start-up, a sweep)."""

if logging.getLevelName(NOTICE) == f"Level {NOTICE}":  # an app that named 25 itself keeps its name
    logging.addLevelName(NOTICE, NOTICE_NAME)

request_id_var: ContextVar[str | None] = ContextVar("pyramid_deferred.request_id", default=None)
"""An id set for a block of work outside a request's own flow (a batch discarded or abandoned, a
durable task on a Celery worker); the request's and its batch's runs are found by the resolver."""
_resolver: Callable[[], str | None] | None = None


def resolve_request_id_with(resolver: Callable[[], str | None]) -> None:
    """How a record finds its request id when none was set explicitly: the add-on's Pyramid glue
    looks at the batch running on this thread, then at Pyramid's current request (only when a
    record is written: nothing is set per request for it)."""
    global _resolver
    _resolver = resolver


class RequestIdFilter(logging.Filter):
    """Puts ``request_id`` on each record it sees (the current request's or batch's id, else
    ``"-"``) unless the record has one. On a handler, every line it writes can show
    ``%(request_id)s``, the app's own lines included (``logging.config.dictConfig``'s
    ``filters``; ``fileConfig`` cannot attach filters)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            rid = request_id_var.get()
            if rid is None and _resolver is not None:
                rid = _resolver()
            record.request_id = rid or NO_REQUEST_ID
        return True


class DeferredTaskRecords(RequestIdFilter):
    """The filter of the add-on's loggers: its records carry the channel and the request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.channel = CHANNEL
        return super().filter(record)


_RECORDS = DeferredTaskRecords()


def get_logger(name: str) -> logging.Logger:
    """The stdlib logger ``name`` (the add-on's modules pass ``__name__``), with the filter that
    gives its records ``channel`` and ``request_id``. Its level and handlers are the app's."""
    logger = logging.getLogger(name)
    if _RECORDS not in logger.filters:
        logger.addFilter(_RECORDS)
    return logger


class TaskTraceback(Exception):
    """A failure as text: what :func:`without_locals` hands to the handlers in its place."""


def without_locals(
    error: BaseException, scrub: Callable[[str], str] = str
) -> tuple[type[TaskTraceback], TaskTraceback, None]:
    """``exc_info`` for a failure whose frames hold data (a durable task's arguments, a buyer's
    e-mail): its traceback as text (file, line and code of each frame, never a variable's value),
    as an exception with no frames of its own. stdlib's formatter prints no variables, but a
    handler may read the frames: loguru's ``diagnose=True`` (its default) behind the bridge of
    loguru's README, an error tracker's local variables. ``scrub`` masks the text (a URL's
    password)."""
    text = scrub("".join(traceback.format_exception(error)).rstrip())
    return TaskTraceback, TaskTraceback(text), None


"""The request id: taken from ``X-Request-ID`` when it is sane (and the app trusts that header:
``deferred_task.trust_request_id_header``), generated otherwise, echoed back.

The add-on's tween computes it once per request and sets ``request.request_id`` (a plain
attribute: a reified request property would make Pyramid build a request subclass for every
request, ~17 µs measured); nothing else is set per request. :func:`current_request_id` finds it
when it is asked (a log record is written): the batch running on this thread, else Pyramid's
current request. Every record of the add-on's loggers carries it as ``record.request_id`` (see
:mod:`pyramid_deferred.core.log`); the app's own lines get it from :class:`RequestIdFilter` on a
stdlib handler, or from :func:`add_request_id` among loguru's patchers: the add-on configures no
logging. A new id costs no system call: a per-process random prefix and a counter
(``7f3a9c01d2e4-1b``), unique across the processes of a deployment (the prefix is drawn again in
each forked worker).
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

from pyramid_deferred.core import log as core_log
from pyramid_deferred.core.log import RequestIdFilter as RequestIdFilter  # re-exported: the app's handlers
from pyramid_deferred.core.log import request_id_var

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_ENVIRON_KEY = "HTTP_X_REQUEST_ID"
MAX_REQUEST_ID_LENGTH = 128
_SANE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._@:-]{{1,{MAX_REQUEST_ID_LENGTH}}}")


class _Ids:
    """A random prefix per process and a counter: ``next()`` is a format, not a system call."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = os.urandom(6).hex() + "-"
        self.counter = itertools.count(1)


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.reset)  # a forked worker never repeats its parent's ids


def new_request_id() -> str:
    """A new id: the process's random prefix (48 bits) and a counter, in hex."""
    return f"{_ids.prefix}{next(_ids.counter):x}"


def is_sane_request_id(value: str) -> bool:
    """Letters, digits and ``-_.@:`` only, 1..128 characters (a uuid, a trace id, ``edge-7f3a.1``).

    The id is echoed in a response header and written into log lines, where a ``|`` would pass
    for the format's field separator, ``<`` for markup in a log viewer and ``${...}`` for a
    lookup: anything else is replaced rather than cleaned.
    """
    return _SANE_REQUEST_ID.fullmatch(value) is not None


def request_id_of(environ: Mapping[str, object], *, trust_header: bool = True) -> str:
    """The client's or proxy's ``X-Request-ID`` if sane (and ``trust_header``), else a new id."""
    incoming = environ.get(REQUEST_ID_ENVIRON_KEY) if trust_header else None
    return incoming if isinstance(incoming, str) and is_sane_request_id(incoming) else new_request_id()


def current_request_id() -> str | None:
    """The id of the batch running on this thread, else of the request being handled, else None."""
    from pyramid_deferred.scope import _running_batch

    explicit = request_id_var.get()  # a batch discarded or abandoned, a durable task on a worker
    if explicit is not None:
        return explicit
    batch = _running_batch.get()
    if batch is not None:
        return str(batch.request_id)
    threadlocal = sys.modules.get("pyramid.threadlocal")  # no request without Pyramid loaded
    request = threadlocal.get_current_request() if threadlocal is not None else None
    rid = getattr(request, "request_id", None)
    return rid if isinstance(rid, str) else None


def add_request_id(record: Mapping[str, Any]) -> None:
    """A loguru patcher (``logger.configure(patcher=add_request_id)``): ``extra["request_id"]``
    on every loguru record written while a request is handled or its batch runs, unless the
    record has one."""
    if "request_id" not in record["extra"]:
        rid = current_request_id()
        if rid is not None:
            record["extra"]["request_id"] = rid


core_log.resolve_request_id_with(current_request_id)

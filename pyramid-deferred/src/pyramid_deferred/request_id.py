"""The request id: taken from ``X-Request-ID`` when it is sane (and the app trusts that header:
``deferred_task.trust_request_id_header``), generated otherwise, echoed back.

The add-on's tween computes it once per request, sets ``request.request_id`` (a plain
attribute: a reified request property would make Pyramid build a request subclass for every
request, ~17 µs measured) and makes it :func:`current_request_id` while the request is handled.
Each batch puts it on every log record of its run (``extra["request_id"]``), whichever thread
runs it. For the request's own log lines, add :func:`add_request_id` to loguru's patchers in
your logging set-up: the add-on configures no logging, and a per-request
``logger.contextualize`` would cost every request ~3 µs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loguru import Record

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_ENVIRON_KEY = "HTTP_X_REQUEST_ID"
MAX_REQUEST_ID_LENGTH = 128
_SANE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._@:-]{{1,{MAX_REQUEST_ID_LENGTH}}}")

_current_request_id: ContextVar[str | None] = ContextVar("pyramid_deferred.request_id", default=None)


def new_request_id() -> str:
    """32 random hex characters, like a uuid4's hex (without uuid4's cost: ~0.5 µs, not ~3 µs)."""
    return os.urandom(16).hex()


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
    """The id of the request being handled (or of the batch running), None elsewhere."""
    return _current_request_id.get()


def add_request_id(record: Record) -> None:
    """A loguru patcher: ``extra["request_id"]`` on every record written while a request is
    handled, unless the record already has one (a batch's run sets its own)."""
    rid = _current_request_id.get()
    if rid is not None:
        record["extra"].setdefault("request_id", rid)

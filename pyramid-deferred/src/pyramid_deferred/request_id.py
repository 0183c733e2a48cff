"""The request id: taken from ``X-Request-ID`` when it is sane (and the app trusts that header:
``deferred_task.trust_request_id_header``), generated otherwise, echoed back.

The add-on's tween computes it once per request, sets ``request.request_id`` (a plain
attribute: a reified request property would make Pyramid build a request subclass for every
request, ~17 µs measured) and makes it :func:`current_request_id` while the request is handled.
Each batch makes it current again around its run, whichever thread runs it, so every record of
the add-on's loggers carries it as ``record.request_id`` (see :mod:`pyramid_deferred.core.log`).
The app's own lines get it from :class:`RequestIdFilter` on a stdlib handler, or from
:func:`add_request_id` among loguru's patchers: the add-on configures no logging.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from pyramid_deferred.core.log import RequestIdFilter as RequestIdFilter  # re-exported: the app's handlers
from pyramid_deferred.core.log import request_id_var

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_ENVIRON_KEY = "HTTP_X_REQUEST_ID"
MAX_REQUEST_ID_LENGTH = 128
_SANE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._@:-]{{1,{MAX_REQUEST_ID_LENGTH}}}")

_current_request_id = request_id_var


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


def add_request_id(record: Mapping[str, Any]) -> None:
    """A loguru patcher (``logger.configure(patcher=add_request_id)``): ``extra["request_id"]``
    on every loguru record written while a request is handled or its batch runs, unless the
    record has one."""
    rid = _current_request_id.get()
    if rid is not None:
        record["extra"].setdefault("request_id", rid)


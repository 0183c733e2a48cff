"""The request id: taken from ``X-Request-ID`` when it is sane, generated otherwise, echoed back.

It is computed once per request by the outermost tween, which sets ``request.request_id`` (a
plain attribute: a reified request property would make Pyramid build a request subclass for
every request, ~12 µs measured) and puts it on every log record written while the request is
handled and while its tasks run: the request's
``RequestBatch`` carries it and applies it around ``run()``, so a skipped or failed task can be
traced to the request that deferred it, whichever thread runs it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from loguru import logger
from pyramid.events import NewResponse
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128
REQUEST_ID_TWEEN = "pyramid_deferred.request_id.request_id_tween_factory"

Handler = Callable[[Request], Response]


def new_request_id() -> str:
    return uuid.uuid4().hex


def is_sane_request_id(value: str) -> bool:
    """Visible ASCII only (no spaces, controls or non-ASCII), 1..128 characters.

    The id is echoed in a response header and written into log lines: anything else could
    split a header or forge a log line, so it is replaced rather than cleaned.
    """
    return 0 < len(value) <= MAX_REQUEST_ID_LENGTH and all("!" <= char <= "~" for char in value)


def request_id(request: Request) -> str:
    """``request.request_id``: the client's or proxy's ``X-Request-ID`` if sane, else a uuid4 hex."""
    incoming = request.headers.get(REQUEST_ID_HEADER)
    return incoming if incoming is not None and is_sane_request_id(incoming) else new_request_id()


def echo_request_id(event: NewResponse) -> None:
    """Subscriber: every response carries the id its tasks will log with."""
    rid = getattr(event.request, "request_id", None)
    if rid is not None:
        event.response.headers[REQUEST_ID_HEADER] = rid


def request_id_tween_factory(handler: Handler, registry: Registry) -> Handler:
    """Outermost: the deferred-task tween (just inside) and the view's own log lines carry the id.

    With ``deferred_task.request_id = false`` it is no tween at all (the handler itself).
    """
    from pyramid_deferred.hook import get_hook

    if not get_hook(registry).settings.request_id:
        return handler

    def request_id_tween(request: Request) -> Response:
        request.request_id = rid = request_id(request)
        with logger.contextualize(request_id=rid):
            return handler(request)

    return request_id_tween


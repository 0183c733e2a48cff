"""The response iterable whose close() is the "after the response" moment on WSGI servers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from webob.response import AppIterRange

OnClose = Callable[[bool], object]
"""Called once by ``close()`` with ``delivered``: did the server take the whole, non-empty body?"""


class ClosingIterable:
    """Yields the original body; ``close()`` closes it, then calls ``on_close(delivered)`` once.

    PEP 3333 servers call ``close()`` after they have written the whole body, so for a body
    with a Content-Length (and on gunicorn always) the client has the response by then.
    ``delivered`` is False when the server never took a non-empty chunk or stopped early:
    HEAD and 304 responses (WebOb sends no body), an aborted body. Servers such as waitress
    send the headers of an empty body only after ``close()``: the client has nothing yet.
    """

    __slots__ = ("_app_iter", "_closed", "_exhausted", "_iterator", "_on_close", "_sent")

    def __init__(self, app_iter: Iterable[bytes], on_close: OnClose) -> None:
        self._app_iter = app_iter
        self._on_close = on_close
        self._iterator: Iterator[bytes] | None = None
        self._closed = False
        self._exhausted = False
        self._sent = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self._app_iter)
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self._exhausted = True
            raise
        if chunk:
            self._sent = True
        return chunk

    @property
    def delivered(self) -> bool:
        return self._exhausted and self._sent

    def app_iter_range(self, start: int, stop: int | None) -> ClosingIterable:
        """WebOb's hook for 206 responses: its own range iterable has no ``close()``, which would
        leave this body unclosed and the request's tasks never run."""
        ranged = getattr(self._app_iter, "app_iter_range", None)
        body = ranged(start, stop) if ranged is not None else AppIterRange(self._app_iter, start, stop)
        return ClosingIterable(body, self._close)

    def close(self) -> None:
        self._close(self.delivered)

    def _close(self, delivered: bool) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._app_iter, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close(delivered)


def wrap_app_iter(response: Any, on_close: OnClose) -> None:
    """Wrap a WebOb response's body, keeping its Content-Length.

    WebOb's ``app_iter`` setter clears Content-Length; without it the body goes out chunked
    (or framed by closing the connection) and the client would wait for the deferred work.
    """
    content_length = response.content_length
    response.app_iter = ClosingIterable(response.app_iter, on_close)
    if content_length is not None:
        response.content_length = content_length

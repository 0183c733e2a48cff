"""The response iterable whose close() is the "after the response" moment on WSGI servers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any


class ClosingIterable:
    """Yields the original body; ``close()`` closes it, then calls ``on_close`` once.

    PEP 3333 servers call ``close()`` after they have written the whole body, so for a body
    with a Content-Length (and on gunicorn always) the client has the response by then.
    """

    __slots__ = ("_app_iter", "_closed", "_on_close")

    def __init__(self, app_iter: Iterable[bytes], on_close: Callable[[], object]) -> None:
        self._app_iter = app_iter
        self._on_close = on_close
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._app_iter)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._app_iter, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()


def wrap_app_iter(response: Any, on_close: Callable[[], object]) -> None:
    """Wrap a WebOb response's body, keeping its Content-Length.

    WebOb's ``app_iter`` setter clears Content-Length; without it the body goes out chunked
    (or framed by closing the connection) and the client would wait for the deferred work.
    """
    content_length = response.content_length
    response.app_iter = ClosingIterable(response.app_iter, on_close)
    if content_length is not None:
        response.content_length = content_length

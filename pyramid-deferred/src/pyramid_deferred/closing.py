"""The response iterable whose close() is the "after the response" moment on WSGI servers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from webob.response import AppIterRange

A = TypeVar("A")


class ClosingIterable(Generic[A]):
    """Hands the server the original body untouched; ``close()`` closes it, then calls
    ``on_close(argument)`` once.

    PEP 3333 servers call ``close()`` after they have written the whole body, so for a body
    with a Content-Length (and on gunicorn always) the client has the response by then. Which
    bodies qualify is decided before (``pyramid_deferred.dispatch``), so that iterating costs
    nothing: ``iter()`` returns the original body's iterator.
    """

    __slots__ = ("_app_iter", "_argument", "_closed", "_on_close")

    def __init__(self, app_iter: Iterable[bytes], on_close: Callable[[A], object], argument: A) -> None:
        self._app_iter = app_iter
        self._on_close = on_close
        self._argument = argument
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._app_iter)

    def app_iter_range(self, start: int, stop: int | None) -> ClosingIterable[ClosingIterable[A]]:
        """WebOb's hook for 206 responses: its own range iterable has no ``close()``, which would
        leave this body unclosed and the request's tasks never run."""
        ranged = getattr(self._app_iter, "app_iter_range", None)
        body = ranged(start, stop) if ranged is not None else AppIterRange(self._app_iter, start, stop)
        return ClosingIterable(body, self._close_once, self)

    def close(self) -> None:
        self._close_once(self)

    def _close_once(self, _: object) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._app_iter, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close(self._argument)


def wrap_app_iter(response: Any, on_close: Callable[[A], object], argument: A) -> None:
    """Wrap a WebOb response's body, keeping its Content-Length.

    WebOb's ``app_iter`` setter clears Content-Length (a header rewrite, ~1 µs, and then a second
    to put it back): the body is swapped on ``_app_iter``, which WebOb's own ``app_iter`` property
    and ``__call__`` read (tests/unit/pyramid/test_closing.py pins that).
    """
    response._app_iter = ClosingIterable(response._app_iter, on_close, argument)

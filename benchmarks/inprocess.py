"""One WSGI request in process, as the in-process benchmarks time it: no socket, no checks.

The body is iterated and closed, as a server does: the add-on, Flask and Django run what was
handed to them in ``close()``, inside what is timed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[..., Iterable[bytes]]


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> Callable[
    [bytes], None
]:
    return _write


def _write(data: bytes) -> None:
    pass


def call(app: WSGIApp, environ: dict[str, Any]) -> None:
    """``app`` answers a copy of ``environ`` (apps write into theirs), body read, then closed."""
    body = app(dict(environ), _start_response)
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()

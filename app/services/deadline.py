"""An overall deadline for one HTTP exchange, enforced on every socket operation.

httpx's timeouts apply per operation: with a read timeout of 2 s, a server that sends one
byte every 1.9 s holds the request for as long as it likes. A deferred task declares a
worst-case cost that the runner's budget relies on, so each exchange also gets a deadline:
inside :func:`deadline_after`, every connect, TLS handshake, read and write made through
:class:`DeadlineBackend` is given ``min(its own timeout, time left)`` and fails with
httpcore's timeout error (httpx's ``TimeoutException``) once no time is left. Name
resolution is bounded too: ``socket.getaddrinfo`` has no timeout of its own.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore

_deadline: ContextVar[float | None] = ContextVar("http_deadline", default=None)
_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="resolve")


@contextmanager
def deadline_after(seconds: float) -> Iterator[None]:
    """Every socket operation in this block (in this thread) ends within ``seconds``."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _time_left(
    timeout: float | None, error: type[Exception], until: float | None = None
) -> float | None:
    """The timeout for the next operation: its own, shortened to what the deadline leaves."""
    deadlines = [d for d in (_deadline.get(), until) if d is not None]
    if not deadlines:
        return timeout
    left = min(deadlines) - time.monotonic()
    if left <= 0:
        raise error("overall deadline of the HTTP exchange reached")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation respects the deadline of the current exchange.

    Pooled connections outlive one exchange; the deadline is looked up per operation, so a
    reused connection obeys the deadline of whichever exchange is using it.
    """

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend with deadline-bounded resolution, connects and I/O."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        # The connect timeout covers the whole phase, not each address in turn as
        # socket.create_connection would do.
        phase_end = None if timeout is None else time.monotonic() + timeout
        addresses = _resolve(host, port, _time_left(None, httpcore.ConnectTimeout, phase_end))
        error: Exception = httpcore.ConnectError(f"no address found for {host}")
        for address in addresses:
            left = _time_left(None, httpcore.ConnectTimeout, phase_end)
            try:
                stream = self._inner.connect_tcp(address, port, left, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return DeadlineStream(stream)
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [host]
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
    except OSError as exc:
        raise httpcore.ConnectError(f"resolving {host} failed: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))

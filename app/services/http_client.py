"""The process's one HTTP client, and the timeouts each service sends with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpcore
import httpx

from app.services.deadline import DeadlineBackend
from app.services.env import read_seconds

USER_AGENT = "deferred-task-runner-integrations/0.1"
MIN_TIMEOUT_SECONDS = 0.01
MAX_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class HttpTimeouts:
    """Connect and read timeouts; their sum is also the deadline of the whole exchange.

    Write and pool-wait reuse these values but cannot stretch the total: every socket
    operation is clamped to the overall deadline (see :mod:`app.services.deadline`).
    """

    connect: float
    read: float

    def __post_init__(self) -> None:
        for name in ("connect", "read"):
            value = getattr(self, name)
            if not MIN_TIMEOUT_SECONDS <= value <= MAX_TIMEOUT_SECONDS:
                raise ValueError(
                    f"{name} timeout must be {MIN_TIMEOUT_SECONDS:g} to "
                    f"{MAX_TIMEOUT_SECONDS:g} seconds, got {value!r}"
                )

    @property
    def deadline(self) -> float:
        return self.connect + self.read

    def for_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect, read=self.read, write=self.read, pool=self.connect
        )

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], prefix: str, default: HttpTimeouts
    ) -> HttpTimeouts:
        """``{prefix}_CONNECT_TIMEOUT`` and ``{prefix}_READ_TIMEOUT``, in seconds."""
        bounds = {"minimum": MIN_TIMEOUT_SECONDS, "maximum": MAX_TIMEOUT_SECONDS}
        return cls(
            connect=read_seconds(environ, f"{prefix}_CONNECT_TIMEOUT", default.connect, **bounds),
            read=read_seconds(environ, f"{prefix}_READ_TIMEOUT", default.read, **bounds),
        )


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's default transport, its connection pool built on :class:`DeadlineBackend`.

    httpx has no parameter for httpcore's ``network_backend``, so the pool the parent made
    (no connection opened yet) is replaced by an identical one on the deadline backend.
    """

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=DeadlineBackend(),
        )


def create_http_client(
    *,
    max_connections: int = 20,
    max_keepalive_connections: int = 10,
    keepalive_expiry: float = 30.0,
) -> httpx.Client:
    """One client per process, shared by every service: keep-alive connections are reused
    across requests and threads instead of paying a TCP and TLS handshake per event.

    No redirects (a 3xx means a misconfigured URL, and following it could carry the body
    elsewhere) and no proxy from the environment (the services' hosts are configured here).
    """
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=keepalive_expiry,
    )
    return httpx.Client(
        transport=_DeadlineTransport(limits),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        trust_env=False,
    )

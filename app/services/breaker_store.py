"""Hands out each service's circuit breaker, its state in memory or shared through Redis."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.services.breaker import BreakerSettings, ServiceBreaker
from app.services.breaker_storage import (
    LocalBreakerStorage,
    ProbeStorage,
    RedisHealth,
    SharedBreakerStorage,
)
from app.services.env import read_seconds, read_text
from app.services.secret import Secret

REDIS_SCHEMES = ("redis", "rediss", "unix")
NAMESPACE_PREFIX = "deferred-task-runner"
DEFAULT_REDIS_TIMEOUT = 0.05
DEFAULT_REDIS_RETRY_AFTER = 30.0


@dataclass(frozen=True, slots=True)
class BreakerStoreSettings:
    """``redis_url`` is a secret: it may carry the Redis password."""

    redis_url: Secret | None = None
    redis_timeout: float = DEFAULT_REDIS_TIMEOUT
    redis_retry_after: float = DEFAULT_REDIS_RETRY_AFTER

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> BreakerStoreSettings:
        raw = read_text(environ, "CIRCUIT_BREAKER_REDIS_URL")
        if raw is not None and urlsplit(raw).scheme not in REDIS_SCHEMES:
            raise ValueError(
                "CIRCUIT_BREAKER_REDIS_URL is not allowed (value hidden: it may hold a password); "
                "allowed: redis://[[user]:password@]host[:port][/db], rediss://... or unix://..."
            )
        return cls(
            redis_url=Secret(raw) if raw is not None else None,
            redis_timeout=read_seconds(
                environ,
                "CIRCUIT_BREAKER_REDIS_TIMEOUT",
                DEFAULT_REDIS_TIMEOUT,
                minimum=0.001,
                maximum=5,
            ),
            redis_retry_after=read_seconds(
                environ,
                "CIRCUIT_BREAKER_REDIS_RETRY_AFTER",
                DEFAULT_REDIS_RETRY_AFTER,
                minimum=0.01,
                maximum=3600,
            ),
        )


class BreakerStore:
    """One per process. Without Redis every breaker lives in this process's memory; with
    Redis, all breakers share one client (and one view of Redis's health), each service in
    its own namespace, so that failures seen by one worker open the breaker for all."""

    def __init__(
        self,
        redis: Redis | None = None,
        *,
        redis_timeout: float = DEFAULT_REDIS_TIMEOUT,
        redis_retry_after: float = DEFAULT_REDIS_RETRY_AFTER,
        namespace_prefix: str = NAMESPACE_PREFIX,
    ) -> None:
        self._redis = redis
        self._redis_timeout = redis_timeout
        self._health = RedisHealth(retry_after=redis_retry_after)
        self._prefix = namespace_prefix
        self._handed_out: dict[str, ServiceBreaker] = {}

    @classmethod
    def from_settings(cls, settings: BreakerStoreSettings) -> BreakerStore:
        if settings.redis_url is None:
            return cls()
        return cls(
            connect_redis(settings.redis_url, timeout=settings.redis_timeout),
            redis_timeout=settings.redis_timeout,
            redis_retry_after=settings.redis_retry_after,
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> BreakerStore:
        return cls.from_settings(BreakerStoreSettings.from_environ(environ))

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def breaker(self, service: str, settings: BreakerSettings) -> ServiceBreaker:
        storage: ProbeStorage
        if self._redis is None:
            storage = LocalBreakerStorage()
        else:
            storage = SharedBreakerStorage(
                f"{self._prefix}:{service}",
                self._redis,
                self._health,
                redis_timeout=self._redis_timeout,
            )
        breaker = ServiceBreaker(service, settings, storage)
        self._handed_out[service] = breaker
        return breaker

    def retry_after(self, service: str) -> float | None:
        """Seconds until ``service``'s open breaker lets a call through; None when it may be
        called (or was not used yet in this process). The add-on's service check."""
        breaker = self._handed_out.get(service)
        return None if breaker is None else breaker.retry_after()

    def states(self) -> list[dict[str, object]]:
        """Each breaker handed out so far (a service not used yet has none): its state, its
        consecutive failures, and where the state lives. For the dashboard's panel."""
        rows: list[dict[str, object]] = []
        for service, breaker in sorted(self._handed_out.items()):
            rows.append({
                "service": service,
                "state": breaker.current_state,
                "failures": breaker.failure_count,
                "state kept in": "Redis (shared by the workers)" if self.shared else "this process",
            })
        return rows

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def connect_redis(url: Secret, *, timeout: float) -> Redis:
    """A client that fails fast: short socket timeouts and no retries, because a breaker
    check that waits on Redis costs the task the time the breaker is meant to save."""
    return Redis.from_url(
        url.reveal(),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        driver_info=None,  # no CLIENT SETINFO round trips on each new connection
    )

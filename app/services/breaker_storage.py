"""Where a circuit breaker keeps its state: this process's memory, or Redis for all workers.

Both storages are pybreaker storages (so ``pybreaker.CircuitBreaker`` drives them) plus a
probe slot: in half-open state exactly one request may test the service, in this process
and, with Redis, across every process sharing the breaker.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from loguru import logger
from pybreaker import (
    STATE_CLOSED,
    CircuitBreakerStorage,
    CircuitMemoryStorage,
    CircuitRedisStorage,
)
from redis import Redis
from redis.exceptions import RedisError

T = TypeVar("T")
Clock = Callable[[], float]

# Redis commands one task can issue through the breaker, counted on the costliest path (a
# half-open probe that fails and re-opens the breaker); tests/integration/services check it.
REDIS_COMMANDS_PER_TASK = 16
_RELEASE_IF_OWNER = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)

_log = logger.bind(channel="INTEGRATIONS", service="circuit-breaker")


class ProbeStorage(CircuitBreakerStorage):
    """A pybreaker storage that can also hand out the single half-open probe."""

    @abstractmethod
    def claim_probe(self, ttl_seconds: float) -> str | None:
        """A token when this caller may probe, None when another probe is in flight.

        The claim expires after ``ttl_seconds`` so a probe whose process died cannot keep
        the breaker half-open forever.
        """

    @abstractmethod
    def release_probe(self, token: str) -> None: ...

    @property
    @abstractmethod
    def overhead_seconds(self) -> float:
        """Worst-case time the breaker's bookkeeping adds to one task."""


class _ProbeSlot:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._holder: tuple[str, float] | None = None

    def claim(self, ttl_seconds: float) -> str | None:
        with self._lock:
            now = self._clock()
            if self._holder is not None and now < self._holder[1]:
                return None
            token = uuid.uuid4().hex
            self._holder = (token, now + ttl_seconds)
            return token

    def release(self, token: str) -> None:
        with self._lock:
            if self._holder is not None and self._holder[0] == token:
                self._holder = None


class LocalBreakerStorage(CircuitMemoryStorage, ProbeStorage):
    """pybreaker's in-memory storage, with counters safe to update from several threads."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        super().__init__(STATE_CLOSED)
        self._counter_lock = threading.Lock()
        self._slot = _ProbeSlot(clock)

    def increment_counter(self) -> None:
        with self._counter_lock:
            super().increment_counter()

    def increment_success_counter(self) -> None:
        with self._counter_lock:
            super().increment_success_counter()

    def claim_probe(self, ttl_seconds: float) -> str | None:
        return self._slot.claim(ttl_seconds)

    def release_probe(self, token: str) -> None:
        self._slot.release(token)

    @property
    def overhead_seconds(self) -> float:
        return 0.0


class RedisHealth:
    """Whether this process currently trusts Redis; shared by every breaker using one client.

    On a fault, breakers switch to local state for ``retry_after`` seconds, then try Redis
    again. The fault is logged once per outage (not per call, not per breaker), and the
    recovery once.
    """

    def __init__(self, *, retry_after: float = 30.0, clock: Clock = time.monotonic) -> None:
        self._retry_after = retry_after
        self._clock = clock
        self._lock = threading.Lock()
        self._down_until: float | None = None
        self._in_outage = False
        self.faults = 0

    def available(self) -> bool:
        down_until = self._down_until
        return down_until is None or self._clock() >= down_until

    def report_fault(self, error: BaseException | None) -> None:
        with self._lock:
            self.faults += 1
            self._down_until = self._clock() + self._retry_after
            first, self._in_outage = not self._in_outage, True
        detail = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
        if first:
            _log.warning(
                "Redis for circuit-breaker state is unreachable ({}); breakers use this process's "
                "own state and retry Redis every {:g}s",
                detail,
                self._retry_after,
            )
        else:
            _log.debug("Redis for circuit-breaker state still unreachable ({})", detail)

    def report_ok(self) -> None:
        if not self._in_outage:
            return
        with self._lock:
            recovered, self._in_outage, self._down_until = self._in_outage, False, None
        if recovered:
            _log.info("Redis for circuit-breaker state answers again; breaker state is shared")


class _ReportFaults(logging.Handler):
    """CircuitRedisStorage swallows RedisError and only logs it: that log call is our signal."""

    def __init__(self, health: RedisHealth) -> None:
        super().__init__()
        self._health = health

    def emit(self, record: logging.LogRecord) -> None:
        self._health.report_fault(record.exc_info[1] if record.exc_info else None)


def _fault_signal(health: RedisHealth, namespace: str) -> logging.Logger:
    # Made directly, not with logging.getLogger(): it must never reach the root handlers,
    # which would log every failed Redis call again.
    signal = logging.Logger(f"{__name__}.{namespace}")
    signal.propagate = False
    signal.addHandler(_ReportFaults(health))
    return signal


class SharedBreakerStorage(ProbeStorage):
    """pybreaker's CircuitRedisStorage (one namespace per service) with a local fallback.

    While Redis answers, every worker and machine sees the same state, so failures seen by
    one open the breaker for all. When it does not, this process keeps a working breaker on
    its own state instead of pybreaker's default (report "closed" forever).
    """

    def __init__(
        self,
        namespace: str,
        redis: Redis,
        health: RedisHealth,
        *,
        redis_timeout: float,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__("redis")
        self._namespace = namespace
        self._redis = redis
        self._health = health
        self._redis_timeout = redis_timeout
        self._local = LocalBreakerStorage(clock)
        self._remote: CircuitRedisStorage | None = None
        self._remote_lock = threading.Lock()
        self._probe_key = f"{namespace}:pybreaker:probe"

    @property
    def overhead_seconds(self) -> float:
        # Each command may take up to the socket timeout, plus one connect.
        return (REDIS_COMMANDS_PER_TASK + 1) * self._redis_timeout

    def _remote_storage(self) -> CircuitRedisStorage | None:
        if not self._health.available():
            return None
        if self._remote is None:
            with self._remote_lock:
                if self._remote is None:
                    try:
                        remote = CircuitRedisStorage(STATE_CLOSED, self._redis, self._namespace)
                    except RedisError as exc:
                        self._health.report_fault(exc)
                        return None
                    remote.logger = _fault_signal(self._health, self._namespace)
                    self._remote = remote
        return self._remote

    def _use(self, operation: Callable[[CircuitBreakerStorage], T]) -> T:
        """Run ``operation`` on Redis; on a fault, on this process's state instead."""
        remote = self._remote_storage()
        if remote is not None:
            faults_before = self._health.faults
            try:
                result = operation(remote)
            except RedisError as exc:  # CircuitRedisStorage lets some errors through
                self._health.report_fault(exc)
            else:
                if self._health.faults == faults_before:
                    self._health.report_ok()
                    return result
        return operation(self._local)

    @property
    def state(self) -> str:
        return self._use(lambda s: s.state)

    @state.setter
    def state(self, state: str) -> None:
        def assign(storage: CircuitBreakerStorage) -> None:
            storage.state = state

        self._use(assign)

    def increment_counter(self) -> None:
        self._use(lambda s: s.increment_counter())

    def reset_counter(self) -> None:
        self._use(lambda s: s.reset_counter())

    def increment_success_counter(self) -> None:
        self._use(lambda s: s.increment_success_counter())

    def reset_success_counter(self) -> None:
        self._use(lambda s: s.reset_success_counter())

    @property
    def counter(self) -> int:
        return self._use(lambda s: s.counter)

    @property
    def success_counter(self) -> int:
        return self._use(lambda s: s.success_counter)

    @property
    def opened_at(self) -> datetime | None:
        return self._use(lambda s: s.opened_at)

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        def assign(storage: CircuitBreakerStorage) -> None:
            storage.opened_at = now

        self._use(assign)

    def claim_probe(self, ttl_seconds: float) -> str | None:
        if self._remote_storage() is not None:
            token = uuid.uuid4().hex
            try:
                claimed = self._redis.set(
                    self._probe_key, token, nx=True, px=max(1, round(ttl_seconds * 1000))
                )
            except RedisError as exc:
                self._health.report_fault(exc)
            else:
                self._health.report_ok()
                return token if claimed else None
        return self._local.claim_probe(ttl_seconds)

    def release_probe(self, token: str) -> None:
        self._local.release_probe(token)
        if self._remote_storage() is not None:
            try:
                self._redis.eval(_RELEASE_IF_OWNER, 1, self._probe_key, token)
            except RedisError as exc:
                self._health.report_fault(exc)

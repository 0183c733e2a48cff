"""One circuit breaker per service, checked before and updated after each HTTP call.

``pybreaker.CircuitBreaker.call()`` holds the breaker's lock for the whole guarded call,
so wrapping an HTTP request in it would let one slow request block every other request
to that service in the process. Here the breaker is asked for a :class:`Permit` before
the call and told the outcome after it; pybreaker's lock is only taken for the state
transitions themselves (``open()``, ``half_open()``, ``close()``), never across the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from loguru import logger
from pybreaker import (
    STATE_CLOSED,
    STATE_HALF_OPEN,
    STATE_OPEN,
    CircuitBreaker,
    CircuitBreakerListener,
    CircuitBreakerState,
)

from app.services.breaker_storage import ProbeStorage
from app.services.env import read_int, read_seconds

DEFAULT_FAIL_MAX = 5
DEFAULT_RESET_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """``fail_max`` consecutive failures open the breaker for ``reset_timeout`` seconds."""

    fail_max: int = DEFAULT_FAIL_MAX
    reset_timeout: float = DEFAULT_RESET_TIMEOUT

    def __post_init__(self) -> None:
        if self.fail_max < 1:
            raise ValueError(f"fail_max must be at least 1, got {self.fail_max!r}")
        if not self.reset_timeout > 0:
            raise ValueError(f"reset_timeout must be above 0 seconds, got {self.reset_timeout!r}")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], prefix: str) -> BreakerSettings:
        """``{prefix}_BREAKER_FAIL_MAX`` and ``{prefix}_BREAKER_RESET_TIMEOUT`` (seconds)."""
        return cls(
            fail_max=read_int(
                environ, f"{prefix}_BREAKER_FAIL_MAX", DEFAULT_FAIL_MAX, minimum=1, maximum=1000
            ),
            reset_timeout=read_seconds(
                environ,
                f"{prefix}_BREAKER_RESET_TIMEOUT",
                DEFAULT_RESET_TIMEOUT,
                minimum=0.01,
                maximum=86400,
            ),
        )


class _LogTransitions(CircuitBreakerListener):
    """Opening and closing are worth a log line each; single calls are not."""

    def state_change(
        self,
        cb: CircuitBreaker,
        old_state: CircuitBreakerState | None,
        new_state: CircuitBreakerState,
    ) -> None:
        log = logger.bind(channel="INTEGRATIONS", service=cb.name)
        old = old_state.name if old_state is not None else "unknown"
        if new_state.name == STATE_OPEN:
            log.warning(
                "circuit for {} opened ({} -> open): calls skipped for {:g}s",
                cb.name,
                old,
                cb.reset_timeout,
            )
        elif new_state.name == STATE_HALF_OPEN:
            log.info("circuit for {} half-open: one probe request may go through", cb.name)
        else:
            log.info("circuit for {} closed ({} -> closed): calls go through again", cb.name, old)


class Permit:
    """Leave to make one call; report its outcome exactly once (later reports are ignored)."""

    __slots__ = ("_breaker", "_done", "probe_token")

    def __init__(self, breaker: ServiceBreaker, probe_token: str | None) -> None:
        self._breaker = breaker
        self.probe_token = probe_token
        self._done = False

    @property
    def is_probe(self) -> bool:
        return self.probe_token is not None

    def record_success(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._record(self, failed=False)

    def record_failure(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._record(self, failed=True)

    def release(self) -> None:
        """Give the permit back without an outcome (our own bug, not the service's)."""
        if not self._done:
            self._done = True
            if self.probe_token is not None:
                self._breaker._storage.release_probe(self.probe_token)


class ServiceBreaker:
    """pybreaker's state machine and storage, driven from outside the HTTP call.

    * closed: every call is permitted; ``fail_max`` consecutive failures open the breaker.
    * open: no call is permitted until ``reset_timeout`` has passed since it opened.
    * then half-open: exactly one probe is permitted (a slot in the storage, shared through
      Redis when configured); its success closes the breaker, its failure opens it again.

    Outcomes of ordinary calls that finish after the breaker left "closed" are ignored: only
    the probe decides how a half-open breaker ends.
    """

    def __init__(self, service: str, settings: BreakerSettings, storage: ProbeStorage) -> None:
        self._storage = storage
        self._breaker = CircuitBreaker(
            fail_max=settings.fail_max,
            reset_timeout=settings.reset_timeout,
            state_storage=storage,
            name=service,
            listeners=[_LogTransitions()],
        )

    @property
    def name(self) -> str:
        return self._breaker.name or ""

    @property
    def current_state(self) -> str:
        return self._breaker.current_state

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted while closed."""
        return self._storage.counter

    @property
    def overhead_seconds(self) -> float:
        return self._storage.overhead_seconds

    def retry_after(self) -> float | None:
        """Seconds until the open breaker lets a probe through; None when calls may go now
        (closed, half-open, or open with its reset timeout over: the next call is the probe)."""
        if self._storage.state != STATE_OPEN:
            return None
        opened_at = self._storage.opened_at
        if opened_at is None:
            return None
        reopens = opened_at + timedelta(seconds=self._breaker.reset_timeout)
        left = (reopens - datetime.now(UTC)).total_seconds()
        return left if left > 0 else None

    def try_acquire(self, probe_ttl_seconds: float) -> Permit | None:
        """A permit to call the service now, or None when the breaker says not to."""
        state = self._storage.state
        if state == STATE_CLOSED:
            return Permit(self, None)
        if state == STATE_OPEN and not self._reset_timeout_elapsed():
            return None
        token = self._storage.claim_probe(probe_ttl_seconds)
        if token is None:
            return None
        if state == STATE_OPEN:
            self._breaker.half_open()
        return Permit(self, token)

    def _reset_timeout_elapsed(self) -> bool:
        opened_at = self._storage.opened_at
        if opened_at is None:
            return True
        return datetime.now(UTC) >= opened_at + timedelta(seconds=self._breaker.reset_timeout)

    def _record(self, permit: Permit, *, failed: bool) -> None:
        if permit.probe_token is not None:
            try:
                if failed:
                    self._breaker.open()
                else:
                    self._breaker.close()
            finally:
                self._storage.release_probe(permit.probe_token)
            return
        if not failed:
            # Harmless in any state: the counter only matters while closed, and is reset
            # again whenever the breaker closes.
            self._storage.reset_counter()
            return
        if self._storage.state != STATE_CLOSED:
            return
        self._storage.increment_counter()
        if self._storage.counter >= self._breaker.fail_max:
            self._breaker.open()

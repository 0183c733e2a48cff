"""Sending one request for a service: breaker first, an overall deadline, the outcome logged.

This is the part every integration shares, so each service only builds its payload. A
task calling :meth:`Delivery.post_json` never raises for the faults to be expected from a
remote service (timeouts, refused connections, error statuses); it logs them, with the
service's name, and returns an :class:`Outcome`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import httpx
from loguru import logger

from app.services.breaker import ServiceBreaker
from app.services.deadline import deadline_after
from app.services.http_client import HttpTimeouts
from app.services.secret import Redactor, Secret

CHANNEL = "INTEGRATIONS"
# Building and encoding a payload, classifying the answer, writing a log line: well under
# this on any machine that can serve the request in the first place.
LOCAL_WORK_SECONDS = 0.1
SNIPPET_CHARS = 300
# A busy or rate-limiting service is not our payload's fault: counted as failures.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})

JsonObject = Mapping[str, object]


class Outcome(StrEnum):
    SENT = "sent"
    DRY_RUN = "dry_run"  # no credentials configured: payload built, validated and logged
    SKIPPED = "skipped"  # circuit open: no network call made
    FAILED = "failed"  # timeout, connection error, 5xx, 408, 429: counts against the breaker
    REJECTED = "rejected"  # the service refused the request: a bug in our payload or config
    EMPTY = "empty"  # nothing to send


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: str


ResponseCheck = Callable[[httpx.Response], Verdict | None]


class Delivery:
    """Posts JSON for one service through its circuit breaker, within its declared cost."""

    def __init__(
        self,
        service: str,
        http: httpx.Client,
        breaker: ServiceBreaker,
        timeouts: HttpTimeouts,
        *,
        secrets: Iterable[Secret | None] = (),
    ) -> None:
        self._service = service
        self._http = http
        self._breaker = breaker
        self._timeouts = timeouts
        self._redact = Redactor(secrets)
        self._log = logger.bind(channel=CHANNEL, service=service)

    @property
    def max_cost_seconds(self) -> float:
        """The longest one call can take: the HTTP deadline (connect + read) plus the
        breaker's bookkeeping (zero in memory, bounded Redis round trips otherwise)."""
        return self._timeouts.deadline + self._breaker.overhead_seconds + LOCAL_WORK_SECONDS

    def dry_run(self, action: str, payload: JsonObject) -> Outcome:
        """Log what would be sent; ``payload`` must be the secret-free part of the request."""
        self._log.info(
            "{}.{} dry-run (no credentials configured), not sent: {}",
            self._service,
            action,
            json.dumps(payload, sort_keys=True, ensure_ascii=False),
        )
        return Outcome.DRY_RUN

    def post_json(
        self,
        action: str,
        url: str,
        body: JsonObject,
        *,
        headers: Mapping[str, str] | None = None,
        check: ResponseCheck | None = None,
    ) -> Outcome:
        permit = self._breaker.try_acquire(probe_ttl_seconds=self.max_cost_seconds)
        if permit is None:
            self._log.debug("{}.{} skipped: circuit open", self._service, action)
            return Outcome.SKIPPED
        started = time.monotonic()
        try:
            verdict = self._exchange(url, body, headers or {}, check)
        except BaseException:
            permit.release()  # our bug, not the service's: the runner logs it
            raise
        if verdict.outcome is Outcome.FAILED:
            permit.record_failure()
        else:
            permit.record_success()
        self._report(action, verdict, time.monotonic() - started, probe=permit.is_probe)
        return verdict.outcome

    def _exchange(
        self,
        url: str,
        body: JsonObject,
        headers: Mapping[str, str],
        check: ResponseCheck | None,
    ) -> Verdict:
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            with deadline_after(self._timeouts.deadline):
                response = self._http.post(
                    url,
                    content=content,
                    headers={"Content-Type": "application/json", **headers},
                    timeout=self._timeouts.for_httpx(),
                )
        except httpx.TimeoutException as exc:
            return Verdict(Outcome.FAILED, f"timed out ({type(exc).__name__})")
        except httpx.RequestError as exc:
            return Verdict(Outcome.FAILED, f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if status >= 500 or status in RETRYABLE_CLIENT_STATUSES:
            return Verdict(Outcome.FAILED, f"HTTP {status}: {self._snippet(response)}")
        if not 200 <= status < 300:
            return Verdict(Outcome.REJECTED, f"HTTP {status}: {self._snippet(response)}")
        verdict = check(response) if check is not None else None
        return verdict or Verdict(Outcome.SENT, f"HTTP {status}")

    def _report(self, action: str, verdict: Verdict, elapsed: float, *, probe: bool) -> None:
        where = f"{self._service}.{action}"
        reason = self._redact(verdict.reason)
        note = " (half-open probe)" if probe else ""
        if verdict.outcome is Outcome.SENT:
            self._log.debug("{} sent in {:.3f}s{}: {}", where, elapsed, note, reason)
        elif verdict.outcome is Outcome.FAILED:
            self._log.warning("{} failed after {:.3f}s{}: {}", where, elapsed, note, reason)
        else:
            self._log.error(
                "{} rejected by the service (payload or configuration bug, breaker unaffected): {}",
                where,
                reason,
            )

    def _snippet(self, response: httpx.Response) -> str:
        """The start of the answer, for the log; masked before it is cut, so that no
        fragment of an echoed secret survives."""
        text = self._redact(" ".join(response.text.split()))
        return text[:SNIPPET_CHARS] + ("..." if len(text) > SNIPPET_CHARS else "")

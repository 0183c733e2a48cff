"""Sending one request for a service: breaker first, an overall deadline, the outcome logged.

This is the part every integration shares, so each service only builds its payload. A
task calling :meth:`Delivery.post_json` never raises for the faults to be expected from a
remote service (timeouts, refused connections, error statuses); it logs them, with the
service's name, and returns an :class:`Outcome`.

What a line says is fixed here, and it holds no personal data: a dry-run names what it would
have sent (the event, the order or customer id the service gives as ``subject``) and its size,
never the payload; a failure names the status, the reply's size and its numeric error codes,
never the reply's text, which may quote what it was sent (a buyer's e-mail).
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
ERROR_CODE_KEYS = ("code", "error_code", "error_subcode", "subcode", "status")
"""Numeric fields of a JSON error reply worth logging (Meta's ``code``/``error_subcode``): numbers
only, so nothing the reply quotes can come along."""
MAX_ERROR_CODE = 10**9
"""Larger numbers are not error codes (a phone number would be one): left out."""
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

    def dry_run(self, action: str, payload: JsonObject, *, subject: str) -> Outcome:
        """Log that ``payload`` would be sent: ``subject`` (``event <id>``, ``order <id>``: never
        a contact detail) and its size, not its content."""
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        self._log.info(
            "{}.{} dry-run (no credentials configured), not sent: {}, {} bytes",
            self._service, action, subject, size,
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
            return Verdict(Outcome.FAILED, reply_summary(response))
        if not 200 <= status < 300:
            return Verdict(Outcome.REJECTED, reply_summary(response))
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


def reply_summary(response: httpx.Response) -> str:
    """``HTTP 400, 312 bytes (code 100, error_subcode 2804003)``: the status, the size and the
    numeric error codes of a JSON reply, at the top level or under ``error``."""
    summary = f"HTTP {response.status_code}, {len(response.content)} bytes"
    codes = error_codes(response)
    return f"{summary} ({', '.join(f'{key} {value}' for key, value in codes)})" if codes else summary


def error_codes(response: httpx.Response) -> list[tuple[str, int]]:
    try:
        answer = response.json()
    except ValueError:
        return []
    if not isinstance(answer, dict):
        return []
    found = []
    for where in (answer, answer.get("error")):
        if isinstance(where, dict):
            found += [(key, where[key]) for key in ERROR_CODE_KEYS
                      if type(where.get(key)) is int and abs(where[key]) < MAX_ERROR_CODE]
    return found

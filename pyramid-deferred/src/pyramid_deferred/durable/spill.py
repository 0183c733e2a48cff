"""The spill-over: hand a durable task to the engine (Celery) instead of losing it, as a sealed
message (:mod:`pyramid_deferred.durable.message`); the idempotency keys that keep each task to
one run (framework-free). Log lines name a task by key, name, function and reason, never by its
arguments (a buyer's e-mail), and show a failure's traceback without its frames (their local
variables)."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from pyramid_deferred.core.durable import (
    DurableCall,
    call_with_spill_possible,
)
from pyramid_deferred.core.log import NOTICE, get_logger, without_locals
from pyramid_deferred.durable.message import DEFAULT_LEASE_SECONDS, SpilledTask
from pyramid_deferred.durable.outbox import Outbox, OutboxUnavailable

if TYPE_CHECKING:
    from pyramid_deferred.core.task import DeferredTask
    from pyramid_deferred.durable.message import MessageCodec, SealedMessage

log = get_logger(__name__)

ServiceCheck = Callable[[str], "float | None"]
"""``check(service)``: None while the service may be called; else the seconds until it may be
retried (its circuit breaker's reset timeout, what is left of it)."""

BROKER_DOWN_BACKOFF_SECONDS = 5.0
"""After the broker failed once, spills fail at once (each named at ERROR) for this long: the
request's other tasks never wait on a dead broker more than once."""


class SpillReason(StrEnum):
    SKIPPED = "skipped"
    """The budget or the hard limit left no room for it."""
    FAILED = "failed"
    """It raised."""
    SERVICE_DOWN = "service_down"
    """Its service's circuit breaker is open: not run here, retried after the reset timeout."""
    SHUTDOWN = "shutdown"
    """The process stopped with it still queued, or still running, when the grace ran out."""
    OUTBOX = "outbox"
    """Recorded in the outbox before the response left; re-sent by the sweep if its process died."""


KEPT_FOR_THE_SWEEP = frozenset({SpillReason.SKIPPED, SpillReason.FAILED, SpillReason.SHUTDOWN})
"""Reasons whose failed spill leaves the task undone here: its outbox entry stays for the sweep."""


class BrokerUnavailable(Exception):
    """The spill-over engine could not take the task (its message says why, without secrets)."""


class Spiller(Protocol):
    """The engine's side: take one sealed message, or raise :class:`BrokerUnavailable` within a
    bounded time. A message is sent as it is, whoever sealed it (a spill now, an outbox's sweep
    or a dead letter's replay later): its ``key`` names it to the engine."""

    engine: str
    """Its name in log lines ("Celery")."""

    def send(self, message: SealedMessage, *, countdown: float = 0.0) -> None: ...


class Claim(StrEnum):
    CLAIMED = "claimed"
    """The key was free: this run holds it now."""
    DONE = "done"
    """The key already ran to completion: do not run it again."""
    HELD = "held"
    """Another run holds the key right now (its lease has not expired)."""
    UNKNOWN = "unknown"
    """The store could not answer (Redis down): run anyway (at least once over at most once)."""


class Claims(Protocol):
    """Idempotency keys, shared by the web processes and the engine's workers (Redis)."""

    def claim(self, key: str, lease_seconds: float) -> Claim: ...

    def done(self, key: str) -> None: ...

    def release(self, key: str) -> None: ...


SpillListener = Callable[[SpilledTask, bool], object]
"""Called after each spill with the task and whether the engine took it (metrics)."""


class SpillOver:
    """One per application: the engine, the message codec (its keys), the idempotency keys and
    the service check."""

    def __init__(
        self,
        spiller: Spiller,
        claims: Claims | None = None,
        *,
        codec: MessageCodec,
        service_check: ServiceCheck | None = None,
        logger: logging.Logger = log,
        clock: Callable[[], float] = time.monotonic,
        broker_down_backoff_seconds: float = BROKER_DOWN_BACKOFF_SECONDS,
        outbox: Outbox | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        """``outbox``: where each request's durable tasks are recorded before its response leaves
        (crash safety, :mod:`pyramid_deferred.durable.outbox`); None: spills only.
        ``lease_seconds``: how long a process may hold a durable task (its outbox entry, its
        running claim: at least twice the declared cost) before another may take it over."""
        self.spiller = spiller
        self.claims = claims
        self.codec = codec
        self.outbox = outbox
        self.lease_seconds = lease_seconds
        self.service_check = service_check
        self.logger = logger
        self.clock = clock
        self.broker_down_backoff_seconds = broker_down_backoff_seconds
        self.listeners: list[SpillListener] = []
        self._broker_down_until = 0.0
        self._broker_down_reason = ""
        self._lock = threading.Lock()

    def for_request(self, request_id: str) -> DurableRun:
        return DurableRun(self, request_id)

    def seal(self, task: SpilledTask) -> str:
        """The sealed message as JSON text: what the outbox keeps, and its sweep sends as it is."""
        return json.dumps(self.codec.seal(task), separators=(",", ":"), sort_keys=True)

    def send(self, task: SpilledTask, *, error: BaseException | None = None, detail: str = "") -> bool:
        """Seal ``task`` and hand it to the engine; log it either way. False when the broker did
        not take it."""
        now = self.clock()
        try:
            if now < self._broker_down_until:
                raise BrokerUnavailable(f"{self._broker_down_reason} (not retried for a few seconds)")
            self.spiller.send(self.codec.seal(task), countdown=task.countdown)
        except BrokerUnavailable as why:
            with self._lock:
                if now >= self._broker_down_until:
                    self._broker_down_until = now + self.broker_down_backoff_seconds
                    self._broker_down_reason = str(why)
            self.logger.error(
                "Deferred task %s (%s%s) could not spill to %s: %s; it is LOST: %s",
                task.name, task.reason, f", {detail}" if detail else "", self.spiller.engine, why,
                task.describe(),
            )
            self._notify(task, False)
            return False
        failed = task.reason == SpillReason.FAILED
        self.logger.log(
            logging.WARNING if failed else NOTICE,
            "Spilled deferred task %s to %s (%s%s) as %s (%s)%s",
            task.name, self.spiller.engine, task.reason, f": {detail}" if detail else "", task.key,
            task.function, f", first attempt in {task.countdown:.1f}s" if task.countdown else "",
            exc_info=without_locals(error) if failed and error is not None else None,
        )
        self._notify(task, True)
        return True

    def _notify(self, task: SpilledTask, taken: bool) -> None:
        for listener in self.listeners:
            try:
                listener(task, taken)
            except Exception:
                self.logger.exception("Spill listener %r failed", listener)


class DurableRun:
    """One request's view of the spill-over: what the runner calls (:class:`DurableHooks`)."""

    __slots__ = ("_token", "kept", "recorded", "request_id", "running", "spill_over")

    def __init__(self, spill_over: SpillOver, request_id: str) -> None:
        self.spill_over = spill_over
        self.request_id = request_id
        self.running: tuple[DeferredTask, int] | None = None
        """The durable task running now, and its sequence (read at shutdown from another thread)."""
        self.recorded: set[str] = set()
        """Keys of this request's tasks in the outbox."""
        self.kept: set[str] = set()
        """Keys whose spill failed: their outbox entries stay, for the sweep to re-send."""
        # A client may send the same X-Request-ID twice: the token keeps two requests' keys apart.
        self._token = secrets.token_hex(4)

    def record(self, queued: Sequence[tuple[DeferredTask, int]], session: object = None) -> None:
        """The durable tasks among ``queued`` go to the outbox, in one round trip (none when there
        are none). Before the response leaves, on the outbox's own connection: if it cannot be
        written the request still answers and the tasks still run here; the failure is logged,
        without their arguments. With ``session`` (a transactional outbox, before its commit):
        through the request's own transaction, whose commit fails with it."""
        spill_over = self.spill_over
        outbox = spill_over.outbox
        if outbox is None:
            return
        entries = []
        for item, sequence in queued:
            key = self.key(item, sequence)
            if type(item.task) is DurableCall and key not in self.recorded:
                entries.append((key, spill_over.seal(self.task(item, sequence, SpillReason.OUTBOX))))
        if not entries:
            return
        if session is not None:
            outbox.record_in(session, entries, spill_over.lease_seconds)  # type: ignore[attr-defined]
            self.recorded.update(key for key, _ in entries)
            return
        try:
            outbox.record(entries, spill_over.lease_seconds)
        except OutboxUnavailable as why:
            spill_over.logger.error(
                "Could not record %d durable task(s) in the %s outbox (%s): they run here as usual, but a "
                "crash before they end would lose them: %s",
                len(entries), outbox.name, why, ", ".join(key for key, _ in entries),
            )
            return
        self.recorded.update(key for key, _ in entries)

    def settle(self) -> None:
        """The batch was reported: every recorded task's fate is final here but for those whose
        spill failed, kept for the sweep. One round trip; a failure leaves them for the sweep
        too (the key keeps a task that ran from running again)."""
        outbox = self.spill_over.outbox
        done = self.recorded - self.kept
        if outbox is None or not done:
            return
        try:
            outbox.clear(sorted(done))
        except OutboxUnavailable as why:
            self.spill_over.logger.warning(
                "Could not clear %d outbox entries (%s): the sweep will re-send them and their keys "
                "keep each from running twice", len(done), why,
            )
            return
        self.recorded -= done

    def key(self, item: DeferredTask, sequence: int) -> str:
        return f"{self.request_id}:{self._token}:{item.name}:{sequence}"

    def service_down(self, call: DurableCall) -> float | None:
        check = self.spill_over.service_check
        if call.service is None or check is None:
            return None
        try:
            return check(call.service)
        except Exception:
            self.spill_over.logger.exception(
                "Service check for %s failed: the task runs as if the service were up", call.service
            )
            return None

    def task(self, item: DeferredTask, sequence: int, reason: str, countdown: float = 0.0) -> SpilledTask:
        call: DurableCall = item.task  # type: ignore[assignment]
        return SpilledTask(
            key=self.key(item, sequence), request_id=self.request_id, name=item.name,
            function=call.function_path, payload=call.payload, reason=reason, countdown=countdown,
            lease_seconds=lease_for(item.max_cost_seconds, self.spill_over.lease_seconds),
        )

    def spill(self, item: DeferredTask, sequence: int, reason: str, *, detail: str = "",
              countdown: float = 0.0, error: BaseException | None = None) -> bool:
        if reason in (SpillReason.FAILED, SpillReason.SERVICE_DOWN) and error is not None:
            claims = self.spill_over.claims
            if claims is not None:  # the in-process run gives its claim back for the engine's
                claims.release(self.key(item, sequence))
        sent = self.spill_over.send(self.task(item, sequence, reason, countdown), error=error, detail=detail)
        if not sent and reason in KEPT_FOR_THE_SWEEP:
            self.kept.add(self.key(item, sequence))
        return sent

    def guard(self, item: DeferredTask, sequence: int) -> Callable[[], object]:
        claims = self.spill_over.claims
        call = item.task
        key = self.key(item, sequence)
        lease = lease_for(item.max_cost_seconds, self.spill_over.lease_seconds)
        logger = self.spill_over.logger

        def guarded() -> object:
            self.running = (item, sequence)
            try:
                claim = Claim.UNKNOWN if claims is None else claims.claim(key, lease)
                if claim is Claim.DONE or claim is Claim.HELD:
                    logger.info("Deferred task %s (%s) not run here: its key is %s elsewhere", item.name,
                                key, "done" if claim is Claim.DONE else "held")
                    return None
                result = call_with_spill_possible(call)
                if claim is Claim.CLAIMED:
                    claims.done(key)  # type: ignore[union-attr]
                return result
            finally:
                self.running = None

        return guarded


def lease_for(max_cost_seconds: float, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> float:
    """How long one run may hold a key: twice the declared cost, at least ``lease_seconds``."""
    return max(lease_seconds, 2 * max_cost_seconds)

"""The outbox: a request's durable tasks, recorded durably before its response leaves, so that a
crash (SIGKILL, the OOM killer, a segfault, a lost node) cannot lose them (framework-free).

A spill needs a living process: one killed between the response and the end of its batch takes
its queued durable tasks with it. So before the response leaves the app, the batch records each
durable task it will run (the sealed message a spill would send) with a *lease*, in one round
trip; requests without durable tasks write nothing. An entry is cleared when its task's fate is
final here (run, spilled, discarded); one whose spill failed (broker down) is kept for later. A
sweep where Celery already runs (``pyramid_deferred.celery``'s periodic task) re-sends the
entries whose lease ran out: their process died, or never got to them. The task's idempotency
key keeps each task to one run, whoever sends it.

Backends: :class:`RedisOutbox` (the broker's Redis; lease times from Redis's own clock) and
``pyramid_deferred.durable.sql_outbox.SqlOutbox`` (a row in the request's own database
transaction, under pyramid_tm and zope.sqlalchemy: the order and its events commit together).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from pyramid_deferred.core.log import NOTICE, get_logger
from pyramid_deferred.values import mask_url

if TYPE_CHECKING:
    from redis import Redis

log = get_logger(__name__)
T = TypeVar("T")
OUTBOX_PREFIX = "pyramid_deferred:outbox"
SWEEP_BATCH = 100
"""Entries one sweep takes at most (the next sweep takes the rest)."""


class OutboxUnavailable(Exception):
    """The outbox could not be written or read (its message says why, without secrets or data)."""


class Outbox(Protocol):
    """Where durable tasks wait, under a lease, until their fate is final."""

    name: str
    """For log lines ("Redis", "SQL")."""

    def record(self, entries: Sequence[tuple[str, str]], lease_seconds: float) -> None:
        """Keep each ``(key, sealed message)`` until cleared, re-sendable once ``lease_seconds``
        have passed; one round trip. Raises :class:`OutboxUnavailable`."""

    def clear(self, keys: Sequence[str]) -> None:
        """Forget these entries (their fate is final). Raises :class:`OutboxUnavailable`."""

    def take_expired(self, limit: int, lease_seconds: float) -> list[tuple[str, str]]:
        """Up to ``limit`` entries whose lease ran out, each leased again for ``lease_seconds``
        (so that two sweeps never send the same entry at once). Raises :class:`OutboxUnavailable`."""

    def pending(self) -> int:
        """How many entries wait (for tests, metrics and the docs' checks)."""


def resend_expired(
    outbox: Outbox, send: Callable[[str, str], object], *, lease_seconds: float, limit: int = SWEEP_BATCH
) -> int:
    """The sweep: send each entry whose lease ran out (``send(key, sealed_message)``), clear it once
    sent; an entry that cannot be sent stays, leased again, for a later sweep. Returns how many
    were sent. Never raises for one entry: the next one is still tried."""
    try:
        expired = outbox.take_expired(limit, lease_seconds)
    except OutboxUnavailable as why:
        log.warning("Outbox sweep could not read the %s outbox: %s", outbox.name, why)
        return 0
    sent: list[str] = []
    for key, message in expired:
        try:
            send(key, message)
        except Exception as error:
            log.warning("Outbox entry %s could not be re-sent (%s): retried at a later sweep", key,
                        type(error).__name__)
            continue
        sent.append(key)
    if sent:
        try:
            outbox.clear(sent)
        except OutboxUnavailable as why:  # sent twice at worst: the key keeps it to one run
            log.warning("Outbox entries %s were re-sent but not cleared: %s", ", ".join(sent), why)
        log.log(NOTICE, "Outbox sweep re-sent %d durable task(s) whose process did not finish them: %s",
                len(sent), ", ".join(sent))
    return len(sent)


_RECORD = """
local now = redis.call('TIME')
local expiry = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], expiry, ARGV[i])
end
return (#ARGV - 1) / 2
"""

_TAKE_EXPIRED = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local keys = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ms, 'LIMIT', 0, tonumber(ARGV[1]))
local taken = {}
for _, key in ipairs(keys) do
  local message = redis.call('HGET', KEYS[1], key)
  if message then
    redis.call('ZADD', KEYS[2], ms + tonumber(ARGV[2]), key)
    table.insert(taken, key)
    table.insert(taken, message)
  else
    redis.call('ZREM', KEYS[2], key)
  end
end
return taken
"""


class RedisOutbox:
    """The outbox in Redis: a hash of sealed messages and a sorted set of their leases' ends.

    Leases are counted by Redis's own clock (``TIME`` inside a script), so web and worker
    machines need not agree on the time. Recording is one script call: one round trip.
    """

    name = "Redis"

    def __init__(self, redis: Redis, *, prefix: str = OUTBOX_PREFIX) -> None:
        self.redis = redis
        self.keys = [f"{prefix}:messages", f"{prefix}:leases"]
        self._record = redis.register_script(_RECORD)
        self._take = redis.register_script(_TAKE_EXPIRED)

    def record(self, entries: Sequence[tuple[str, str]], lease_seconds: float) -> None:
        if not entries:
            return
        arguments: list[str | int] = [max(1, int(lease_seconds * 1000))]
        for key, message in entries:
            arguments += [key, message]
        self._call(lambda: self._record(keys=self.keys, args=arguments))

    def clear(self, keys: Sequence[str]) -> None:
        if not keys:
            return

        def clear() -> None:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hdel(self.keys[0], *keys)
            pipe.zrem(self.keys[1], *keys)
            pipe.execute()

        self._call(clear)

    def take_expired(self, limit: int, lease_seconds: float) -> list[tuple[str, str]]:
        flat: list[bytes | str] = self._call(
            lambda: self._take(keys=self.keys, args=[limit, max(1, int(lease_seconds * 1000))])
        )
        items = [item.decode() if isinstance(item, bytes) else str(item) for item in flat]
        return list(zip(items[::2], items[1::2], strict=True))

    def pending(self) -> int:
        return int(self._call(lambda: self.redis.hlen(self.keys[0])))

    @staticmethod
    def _call(operation: Callable[[], T]) -> T:
        from redis.exceptions import RedisError

        try:
            return operation()
        except RedisError as error:
            raise OutboxUnavailable(f"{type(error).__name__}: {mask_url(str(error))}") from None

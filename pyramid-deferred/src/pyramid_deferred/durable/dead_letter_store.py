"""The dead-letter store: spilled tasks that gave up on the worker (their last retry failed, or the
worker refused them), kept in Redis, the broker's, for ``deferred_task.dead_letter_ttl_seconds``
(30 days by default), sealed as they travelled (signed; arguments encrypted when a key is set).
The worker adds to it (``pyramid_deferred.celery``); the command lists, replays and drops
(``pyramid_deferred.durable.dead_letters``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis

    from pyramid_deferred.durable.message import SealedMessage

DEAD_LETTER_PREFIX = "pyramid_deferred:dead_letter:"
"""One string key per dead letter (its idempotency key after the prefix), with the TTL."""
INDEX_KEY = "pyramid_deferred:dead_letters"
"""A sorted set of the dead letters' keys by the time they died: the listing's order."""
COMMAND = "pyramid-deferred-dead-letters"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A stored dead letter: its sealed message, and why and when it gave up."""

    key: str
    why: str
    attempts: int
    died_at: float
    message: SealedMessage

    def field(self, name: str) -> str:
        """A field of the message (name, function, ...), as text ('?' if missing)."""
        value = self.message.get(name)
        return str(value) if isinstance(value, str | int | bool) else "?"

    @property
    def payload_note(self) -> str:
        payload = self.message.get("payload")
        size = len(payload) if isinstance(payload, str) else 0
        kind = "encrypted" if self.message.get("encrypted") is True else "JSON, in clear"
        return f"{size} characters, {kind} (not shown)"


class DeadLetterStore:
    """Dead letters in Redis: ``SET`` with a TTL, and a sorted set to list them in order."""

    def __init__(self, redis: Redis, *, ttl_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    def add(self, message: SealedMessage, *, why: str, attempts: int) -> str:
        """Keep ``message``; returns its key. Raises redis' errors (the caller logs the loss)."""
        key = str(message["key"])
        now = self.clock()
        record = json.dumps({"why": why, "attempts": attempts, "died_at": now, "message": message},
                            separators=(",", ":"))
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(DEAD_LETTER_PREFIX + key, record, ex=max(1, int(self.ttl_seconds)))
            pipe.zadd(INDEX_KEY, {key: now})
            pipe.zremrangebyscore(INDEX_KEY, "-inf", now - self.ttl_seconds)  # expired ones
            pipe.execute()
        return key

    def get(self, key: str) -> DeadLetter | None:
        raw = self.redis.get(DEAD_LETTER_PREFIX + key)
        return None if raw is None else _dead_letter(key, raw)

    def all(self) -> list[DeadLetter]:
        """Every dead letter still kept, oldest first (keys whose letter expired leave the index)."""
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in self.redis.zrange(INDEX_KEY, 0, -1)]
        if not keys:
            return []
        records = self.redis.mget([DEAD_LETTER_PREFIX + key for key in keys])
        gone = [key for key, raw in zip(keys, records, strict=True) if raw is None]
        if gone:
            self.redis.zrem(INDEX_KEY, *gone)
        return [_dead_letter(key, raw) for key, raw in zip(keys, records, strict=True) if raw is not None]

    def remove(self, key: str) -> bool:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(DEAD_LETTER_PREFIX + key)
            pipe.zrem(INDEX_KEY, key)
            deleted, _ = pipe.execute()
        return bool(deleted)


def _dead_letter(key: str, raw: bytes | str) -> DeadLetter:
    try:
        record = json.loads(raw)
        message = record["message"]
        if not isinstance(message, dict):
            raise TypeError
        return DeadLetter(key, str(record["why"]), int(record["attempts"]), float(record["died_at"]),
                          message)
    except (ValueError, KeyError, TypeError):
        return DeadLetter(key, "(unreadable record)", 0, 0.0, {})


# --- the command ---



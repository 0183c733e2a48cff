"""Dead letters: spilled tasks that gave up on the worker (their last retry failed, or the worker
refused them), kept in Redis, the broker's, for ``deferred_task.dead_letter_ttl_seconds`` (30
days by default), sealed as they travelled (signed; arguments encrypted when a key is set).

    pyramid-deferred-dead-letters [--ini FILE] list          # python -m pyramid_deferred.durable.dead_letters
    pyramid-deferred-dead-letters [--ini FILE] show KEY      # everything but the arguments
    pyramid-deferred-dead-letters [--ini FILE] replay KEY    # send it to Celery again; removed once sent
    pyramid-deferred-dead-letters [--ini FILE] replay --all
    pyramid-deferred-dead-letters [--ini FILE] drop KEY

Settings are read as the worker reads them: the ``deferred_task.*`` keys of the ``[app:main]``
section of ``--ini FILE``, the ``APP_DEFERRED_TASK_*`` environment variables winning. A replayed
task runs once: its idempotency key is skipped by the worker if it already ran.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from redis import Redis

    from pyramid_deferred.durable.message import SealedMessage
    from pyramid_deferred.settings import DeferredTaskSettings

DEAD_LETTER_PREFIX = "pyramid_deferred:dead_letter:"
"""One string key per dead letter (its idempotency key after the prefix), with the TTL."""
INDEX_KEY = "pyramid_deferred:dead_letters"
"""A sorted set of the dead letters' keys by the time they died: the listing's order."""
COMMAND = "pyramid-deferred-dead-letters"
USAGE_ERROR = 2


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


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         out: TextIO | None = None) -> int:
    """``pyramid-deferred-dead-letters``: 0 done, 1 failed (said on stderr), 2 bad arguments."""
    out = out or sys.stdout
    parser = _parser()
    options = parser.parse_args(argv)
    if options.command == "replay" and (options.key is None) == (not options.all):
        parser.error("replay takes a KEY or --all (one of them)")
    if options.ini is not None and not options.ini.is_file():
        parser.error(f"--ini {_shown(str(options.ini))}: no such file")
    from pyramid_deferred.values import ConfigError

    try:
        settings = _settings(options.ini, os.environ if environ is None else environ)
        store = _store(settings)
        return _COMMANDS[options.command](options, settings, store, out)
    except ConfigError as error:
        print(f"{COMMAND}: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # Redis or the broker: said, never with the URL's password
        from pyramid_deferred.values import mask_url

        print(f"{COMMAND}: {type(error).__name__}: {mask_url(str(error))}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="List, show, replay or drop the durable tasks that gave up (docs/durable.md).",
    )
    parser.add_argument("--ini", type=Path, metavar="FILE",
                        help="a paste .ini file whose [app:main] deferred_task.* keys apply "
                        "(the APP_DEFERRED_TASK_* environment variables win)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="one line per dead letter, oldest first")
    show = commands.add_parser("show", help="one dead letter, without its arguments")
    show.add_argument("key", metavar="KEY")
    replay = commands.add_parser("replay", help="send to Celery again (removed from the store once sent)")
    replay.add_argument("key", metavar="KEY", nargs="?")
    replay.add_argument("--all", action="store_true", help="every dead letter")
    drop = commands.add_parser("drop", help="remove one dead letter for good")
    drop.add_argument("key", metavar="KEY")
    return parser


def _settings(ini: Path | None, environ: Mapping[str, str]) -> DeferredTaskSettings:
    from pyramid_deferred.settings import load_deferred_task_settings
    from pyramid_deferred.values import ConfigError

    keys: dict[str, str] = {}
    if ini is not None:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(ini, encoding="utf-8")
        if parser.has_section("app:main"):
            keys = {k: v for k, v in parser["app:main"].items() if k.startswith("deferred_task.")}
    settings = load_deferred_task_settings(keys, environ)
    if not settings.broker_url:
        raise ConfigError(
            "no broker: set APP_DEFERRED_TASK_BROKER_URL (or deferred_task.broker_url in --ini)"
        )
    return settings


def _store(settings: DeferredTaskSettings) -> DeadLetterStore:
    from pyramid_deferred.celery import redis_client

    redis = redis_client(settings.broker_url, max(settings.broker_timeout_seconds, 5.0))
    return DeadLetterStore(redis, ttl_seconds=settings.dead_letter_ttl_seconds)


def _list(options: argparse.Namespace, settings: DeferredTaskSettings, store: DeadLetterStore,
          out: TextIO) -> int:
    letters = store.all()
    for letter in letters:
        print("  ".join(_shown(text) for text in (
            _when(letter.died_at), letter.key, letter.field("name"), letter.field("function"),
            f"{letter.attempts} attempt(s)", letter.why)), file=out)
    print(f"{len(letters)} dead letter(s)", file=out)
    return 0


def _show(options: argparse.Namespace, settings: DeferredTaskSettings, store: DeadLetterStore,
          out: TextIO) -> int:
    letter = store.get(options.key)
    if letter is None:
        return _missing(options.key)
    rows = [("key", letter.key), ("name", letter.field("name")), ("function", letter.field("function")),
            ("request_id", letter.field("request_id")), ("spilled", letter.field("reason")),
            ("attempts", str(letter.attempts)), ("died_at", _when(letter.died_at)), ("why", letter.why),
            ("payload", letter.payload_note)]
    for label, value in rows:
        print(f"{label:<11} {_shown(value)}", file=out)
    return 0


def _replay(options: argparse.Namespace, settings: DeferredTaskSettings, store: DeadLetterStore,
            out: TextIO) -> int:
    from pyramid_deferred.celery import CelerySpiller, create_celery_app

    if options.all:
        letters = store.all()
    else:
        found = store.get(options.key)
        if found is None:
            return _missing(options.key)
        letters = [found]
    spiller = CelerySpiller(create_celery_app(settings))
    for letter in letters:
        if not letter.message:
            print(f"{COMMAND}: {_shown(letter.key)}: unreadable record, not replayed", file=sys.stderr)
            continue
        spiller.send(letter.message)  # BrokerUnavailable: said by main(), the rest stay stored
        store.remove(letter.key)
        print(f"replayed {_shown(letter.key)}", file=out)
    print(f"{len(letters)} dead letter(s) replayed", file=out)
    return 0


def _drop(options: argparse.Namespace, settings: DeferredTaskSettings, store: DeadLetterStore,
          out: TextIO) -> int:
    if not store.remove(options.key):
        return _missing(options.key)
    print(f"dropped {_shown(options.key)}", file=out)
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace, DeferredTaskSettings, DeadLetterStore, TextIO], int]] = {
    "list": _list, "show": _show, "replay": _replay, "drop": _drop,
}


def _missing(key: str) -> int:
    print(f"{COMMAND}: no dead letter {_shown(key)} (see `{COMMAND} list`)", file=sys.stderr)
    return 1


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown(text: str) -> str:
    """Text from the store, safe on a terminal: control characters escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


if __name__ == "__main__":
    sys.exit(main())

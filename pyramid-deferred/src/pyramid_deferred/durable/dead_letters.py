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
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pyramid_deferred.durable.dead_letter_store import (
    COMMAND,
    DEAD_LETTER_PREFIX,
    INDEX_KEY,
    DeadLetter,
    DeadLetterStore,
)

if TYPE_CHECKING:
    from pyramid_deferred.settings import DeferredTaskSettings

__all__ = ["COMMAND", "DEAD_LETTER_PREFIX", "INDEX_KEY", "DeadLetter", "DeadLetterStore", "main"]

USAGE_ERROR = 2


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

"""A session-wide watch: no test secret and no test customer's personal data in any log line or
logged exception, and proof the secrets were used.

Installed by ``tests/conftest.py`` when pytest starts, for the whole run:

- a loguru sink at level 0 that survives ``logger.remove()`` (apps built by tests reconfigure
  loguru: the sink is put back at once), so it sees every loguru record, the stdlib records the
  app routes into loguru included, with their formatted exception;
- a stdlib ``LogRecord`` factory, so records created before (or outside) that routing are seen
  too, whatever handlers a test installs or removes;
- wrappers around ``httpx.Client.send`` and redis-py's ``send_packed_command`` that count, per
  secret, the requests that carried it: a check that found nothing is only worth something if the
  secrets were on the wire during the run.

Personal data is recognised by ``tests/personal_data.py``'s patterns (the test customers'
e-mails, phone numbers, names and IP addresses, however spelt). ``tests/conftest.py`` fails the
test during which a leak was seen, and a last test (``tests/reliability/test_secrets_session.py``)
asserts the totals.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from re import Pattern
from typing import Any

import httpx
from loguru import logger
from redis.connection import AbstractConnection

from tests.integration.services import credentials
from tests.personal_data import PATTERNS, personal_data_in

SECRETS: tuple[str, ...] = (
    *credentials.SECRET_VALUES,
    *credentials.DURABLE_KEYS,
    "hunter2",  # tests/unit: a password in URLs that must be refused without being echoed
    "s3cr3t-value",  # tests/unit/services/test_secret.py
)
WIRE_SECRETS: tuple[str, ...] = tuple(
    secret for secret in credentials.SECRET_VALUES if secret != credentials.MANAGO_API_SECRET
)
"""The credentials a request carries. SALESmanago's API secret never travels: only the
signature derived from it (``MANAGO_SHA``) does."""


@dataclass
class Leak:
    where: str
    secrets: list[str]
    text: str


@dataclass
class SecretGuard:
    secrets: tuple[str, ...] = SECRETS
    personal_data: dict[str, Pattern[str]] = field(default_factory=lambda: dict(PATTERNS))
    leaks: list[Leak] = field(default_factory=list)
    personal_data_leaks: list[Leak] = field(default_factory=list)
    """Each record that held a test customer's personal data: ``secrets`` names what was found."""
    records_seen: int = 0
    on_the_wire: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _undo: list[Callable[[], object]] = field(default_factory=list)
    _sink_id: int | None = None

    # --- detection ---

    def check(self, where: str, text: str) -> None:
        found = [secret for secret in self.secrets if secret in text]
        personal = personal_data_in(text, self.personal_data)
        with self._lock:
            self.records_seen += 1
            if found:
                self.leaks.append(Leak(where, found, text[:2000]))
            if personal:
                self.personal_data_leaks.append(Leak(where, personal, text[:2000]))

    def saw_on_the_wire(self, chunks: Iterable[bytes | str]) -> None:
        data = b"".join(c.encode("latin-1", "replace") if isinstance(c, str) else bytes(c) for c in chunks)
        found = [secret for secret in self.secrets if secret.encode() in data]
        if found:
            with self._lock:
                self.on_the_wire.update(found)

    # --- loguru ---

    def _loguru_sink(self, message: Any) -> None:
        record = message.record
        where = f"loguru {record['name']}:{record['line']} {record['level'].name}"
        self.check(where, f"{message} {record['extra']}")

    def _add_sink(self, add: Callable[..., int]) -> None:
        self._sink_id = add(
            self._loguru_sink, level=0, format="{message}", backtrace=False, diagnose=False, catch=True
        )

    # --- stdlib ---

    def _record_factory(self, previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                text = record.getMessage()
            except Exception:
                text = f"{record.msg} {record.args}"
            if record.exc_info and record.exc_info[1] is not None:
                text += "\n" + "".join(traceback.format_exception(record.exc_info[1]))
            self.check(f"logging {record.name} {record.levelname}", text)
            return record

        return factory

    # --- set-up ---

    def install(self) -> None:
        logger_class = type(logger)
        original_remove = logger_class.remove
        guard = self

        def remove(self: Any, handler_id: int | None = None) -> None:
            original_remove(self, handler_id)
            if handler_id is None or handler_id == guard._sink_id:
                guard._add_sink(logger.add)  # a test's app reconfigured loguru: watch again

        logger_class.remove = remove  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(logger_class, "remove", original_remove))
        self._add_sink(logger.add)

        previous_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(self._record_factory(previous_factory))
        self._undo.append(lambda: logging.setLogRecordFactory(previous_factory))

        original_send = httpx.Client.send

        def send(client: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            headers = [f"{k}: {v}" for k, v in request.headers.items()]
            try:
                content = request.content
            except httpx.RequestNotRead:  # a streamed body: ours never are
                content = b""
            guard.saw_on_the_wire([str(request.url), *headers, content])
            return original_send(client, request, **kwargs)

        httpx.Client.send = send  # type: ignore[method-assign,assignment]
        self._undo.append(lambda: setattr(httpx.Client, "send", original_send))

        original_packed = AbstractConnection.send_packed_command

        def send_packed_command(connection: Any, command: Any, check_health: bool = True) -> None:
            guard.saw_on_the_wire([command] if isinstance(command, bytes | str) else command)
            original_packed(connection, command, check_health)

        AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(AbstractConnection, "send_packed_command", original_packed))

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()
        if self._sink_id is not None:
            with contextlib.suppress(ValueError):
                logger.remove(self._sink_id)
            self._sink_id = None


GUARD = SecretGuard()

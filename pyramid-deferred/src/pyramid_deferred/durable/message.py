"""A spilled task on the wire: signed, so that a worker runs only what a web process of this
app wrote, and its arguments encrypted when a key is set, so that none sits in clear at rest.

The sealed message is a JSON object, the one argument of the Celery task (and what an outbox or
the dead-letter store keeps, to send again as it is)::

    {"v": 1, "key": "<request id>:<run token>:<task name>:<sequence>", "request_id": "...",
     "name": "meta.purchase", "function": "app.durable_tasks:meta_event", "reason": "failed",
     "lease_ms": 60000, "encrypted": true, "payload": "<Fernet token of [args, kwargs]>",
     "signature": "<HMAC-SHA256, hex>"}

``signature`` is the HMAC-SHA256, under the first ``deferred_task.signing_key``, of every other
field in a canonical encoding (JSON, sorted keys, no spaces, ASCII). :meth:`MessageCodec.open`
checks it first, against every signing key, before it reads any other field: a forged or
altered message is refused without being decoded, decrypted or looked up. The signature does
not stop a valid message from being delivered again: the idempotency key (``key``) does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyramid_deferred.core.durable import decode_payload
from pyramid_deferred.values import ConfigError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

MESSAGE_VERSION = 1
SIGNATURE = "signature"
FIELDS = frozenset({"v", "key", "request_id", "name", "function", "reason", "lease_ms", "encrypted",
                    "payload", SIGNATURE})
_TEXT_FIELDS = ("key", "request_id", "name", "function", "reason", "payload")
_DOMAIN = b"pyramid_deferred.durable.message\n"
"""Signed before the fields: a MAC made for something else under the same key never matches."""

SealedMessage = dict[str, object]


DEFAULT_LEASE_SECONDS = 60.0
"""How long one run may hold a durable task's key, at least (``deferred_task.lease_seconds``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SpilledTask:
    """What travels to the engine: enough to run the task again, and to say which one it was."""

    key: str
    """The idempotency key: ``<request id>:<run token>:<task name>:<sequence>``."""
    request_id: str
    name: str
    function: str
    payload: str
    """The JSON of ``[args, kwargs]``."""
    reason: str
    countdown: float = 0.0
    """Seconds the engine waits before the first attempt (a breaker's reset timeout)."""
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    """How long one attempt may hold the key (the task's declared cost, with a margin)."""

    def describe(self) -> str:
        """Which task this is, for a log line: never its arguments."""
        return f"key={self.key} name={self.name} function={self.function} reason={self.reason}"


class ForgedMessage(ValueError):
    """A message this app's web processes did not write, or wrote otherwise: unsigned, signed
    with no key of ours, altered, or malformed. Its text says which, never what it held."""


class UndecryptablePayload(ValueError):
    """A message signed by us whose arguments none of this process's encryption keys decrypts
    (a key missing on the worker, or rotated out too early): kept as a dead letter, for replay
    once the key is back. ``task``: which one (its payload left empty)."""

    def __init__(self, why: str, task: SpilledTask) -> None:
        super().__init__(why)
        self.task = task


class MessageCodec:
    """Seals and opens spilled tasks' messages with the app's keys (never shown: not in the repr)."""

    __slots__ = ("_fernet", "_signing_keys")

    def __init__(self, signing_keys: Sequence[str], encryption_keys: Sequence[str] = ()) -> None:
        if not signing_keys:
            raise ConfigError("deferred_task.signing_key: a message codec needs at least one signing key")
        self._signing_keys = tuple(key.encode() for key in signing_keys)
        self._fernet = _multi_fernet(encryption_keys) if encryption_keys else None

    @property
    def encrypts(self) -> bool:
        return self._fernet is not None

    def __repr__(self) -> str:
        encrypted = ", encrypting" if self.encrypts else ""
        return f"MessageCodec({len(self._signing_keys)} signing key(s){encrypted})"

    def seal(self, task: SpilledTask) -> SealedMessage:
        """The wire message of ``task``: always the same fields, signed, its payload encrypted when
        an encryption key is set. JSON-safe: it may be stored and sent again as it is."""
        payload = task.payload
        if self._fernet is not None:
            payload = self._fernet.encrypt(payload.encode()).decode("ascii")
        message: SealedMessage = {
            "v": MESSAGE_VERSION, "key": task.key, "request_id": task.request_id, "name": task.name,
            "function": task.function, "reason": task.reason,
            "lease_ms": max(1, round(task.lease_seconds * 1000)), "encrypted": self._fernet is not None,
            "payload": payload,
        }
        message[SIGNATURE] = _mac(self._signing_keys[0], _canonical(message)).decode("ascii")
        return message

    def open(self, message: object) -> SpilledTask:
        """The task ``message`` carries, once its signature matches one of the signing keys.

        Raises :class:`ForgedMessage` (unsigned, badly signed or malformed: checked in that order,
        the signature before anything else is read) or :class:`UndecryptablePayload`."""
        if not isinstance(message, dict):
            raise ForgedMessage("the message is not a JSON object")
        signature = message.get(SIGNATURE)
        if not isinstance(signature, str):
            raise ForgedMessage("the message is not signed")
        try:
            body = _canonical({name: value for name, value in message.items() if name != SIGNATURE})
        except (TypeError, ValueError, RecursionError):
            raise ForgedMessage("the message cannot be encoded to be checked") from None
        given = signature.encode("utf-8", "replace")
        if not any(hmac.compare_digest(given, _mac(key, body)) for key in self._signing_keys):
            raise ForgedMessage("the message's signature matches none of the signing keys")
        # Signed by a web process of this app: what follows only guards against a version skew.
        return self._task(message)

    def _task(self, message: dict[str, object]) -> SpilledTask:
        if message.keys() != FIELDS or type(message["v"]) is not int or message["v"] != MESSAGE_VERSION:
            raise ForgedMessage(f"the message is not a version {MESSAGE_VERSION} durable task")
        text = [message[name] for name in _TEXT_FIELDS]
        lease_ms, encrypted = message["lease_ms"], message["encrypted"]
        if (not all(isinstance(value, str) for value in text) or type(lease_ms) is not int
                or lease_ms <= 0 or type(encrypted) is not bool):
            raise ForgedMessage("the message has a field of the wrong type")
        key, request_id, name, function, reason, payload = (str(value) for value in text)
        task = SpilledTask(key=key, request_id=request_id, name=name, function=function, payload="",
                           reason=reason, lease_seconds=lease_ms / 1000)
        if encrypted:
            payload = self._decrypt(payload, task)
        try:
            decode_payload(payload)
        except (ValueError, RecursionError):
            raise ForgedMessage("the message's payload is not the JSON of [args, kwargs]") from None
        return dataclasses.replace(task, payload=payload)

    def _decrypt(self, token: str, task: SpilledTask) -> str:
        if self._fernet is None:
            raise UndecryptablePayload(
                "its arguments are encrypted and no deferred_task.encryption_key is set here", task
            )
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(token.encode("ascii", "replace")).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            raise UndecryptablePayload(
                "none of the deferred_task.encryption_key keys decrypts its arguments", task
            ) from None


def _canonical(fields: dict[str, object]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, _DOMAIN + body, hashlib.sha256).hexdigest().encode("ascii")


def _multi_fernet(keys: Sequence[str]) -> MultiFernet:
    try:
        from cryptography.fernet import Fernet, MultiFernet
    except ImportError as error:
        raise ConfigError(
            f"deferred_task.encryption_key is set but cryptography is not installed ({error.name} is "
            "missing); install pyramid-deferred[celery]"
        ) from None
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (TypeError, ValueError):
        raise ConfigError(
            "deferred_task.encryption_key (APP_DEFERRED_TASK_ENCRYPTION_KEY) (value hidden) is not a "
            "comma-separated list of Fernet keys"
        ) from None

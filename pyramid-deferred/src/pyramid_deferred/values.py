"""Parsers of setting values: each knows what it allows, and every failure names the source.

A parser is called with the raw text and where it came from (``APP_DEFERRED_TASK_BUDGET_SECONDS``
or ``deferred_task.budget_seconds (.ini setting)``); its ``allowed`` text is the one the error
message and the generated settings table both show.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pyramid_deferred.token_strength import MIN_TOKEN_BITS, is_strong_token

T = TypeVar("T")
N = TypeVar("N", int, float)

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
URL_PATH_CHARACTERS = frozenset(string.ascii_letters + string.digits + "/._-~")


class ConfigError(ValueError):
    """A setting has a value the application cannot start with."""


class Rejected(ValueError):
    """Raised by a conversion: the value is not allowed, for the reason given (``is not a boolean``)."""


@dataclass(frozen=True, slots=True)
class Parser(Generic[T]):
    allowed: str
    """What the setting allows, as shown in error messages and in the settings table."""
    convert: Callable[[str], T]
    """Turns the raw text into a value, or raises :class:`Rejected` with the reason."""

    def __call__(self, raw: str, source: str) -> T:
        try:
            return self.convert(raw)
        except Rejected as why:
            raise ConfigError(f"{source}={raw!r} {why}; allowed: {self.allowed}") from None


def _bool(raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise Rejected("is not a boolean")


parse_bool: Parser[bool] = Parser(
    "(any case) " + "/".join(sorted(TRUE_WORDS)) + " or " + "/".join(sorted(FALSE_WORDS)), _bool
)


def _ranged(convert: Callable[[str], N], kind: str, minimum: N, maximum: N, note: str) -> Parser[N]:
    def parse(raw: str) -> N:
        try:
            value = convert(raw.strip())
        except ValueError:
            raise Rejected(f"is not {kind}") from None
        # No math.isnan() on a whole number: a 400-digit one does not fit in a float (OverflowError).
        if (isinstance(value, float) and math.isnan(value)) or not minimum <= value <= maximum:
            raise Rejected("is out of range")
        return value

    return Parser(f"{kind} from {minimum:g} to {maximum:g}{note}", parse)


def seconds_parser(*, minimum: float, maximum: float, note: str = "") -> Parser[float]:
    return _ranged(float, "a number of seconds", float(minimum), float(maximum), note)


def ratio_parser(*, minimum: float, maximum: float) -> Parser[float]:
    return _ranged(float, "a number", float(minimum), float(maximum), "")


def hours_parser(*, minimum: float, maximum: float) -> Parser[float]:
    return _ranged(float, "a number of hours", float(minimum), float(maximum), "")


def int_parser(*, minimum: int, maximum: int) -> Parser[int]:
    return _ranged(int, "a whole number", minimum, maximum, "")


def choice_parser(choices: tuple[str, ...]) -> Parser[str]:
    upper = all(c.isupper() for c in choices)

    def parse(raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in choices:
            raise Rejected("is not allowed")
        return value

    return Parser(f"(any case) {', '.join(choices)}", parse)


def _path(raw: str) -> str:
    if not raw.strip():
        raise Rejected("is empty")
    return raw.strip()


parse_path: Parser[str] = Parser("a file path such as logs/deferred_task.log", _path)


def _url_path(raw: str) -> str:
    value = raw.strip()
    plain = value.startswith("/") and "//" not in value and set(value) <= URL_PATH_CHARACTERS
    if not plain or len(value) > 200:
        raise Rejected("is not allowed")
    return value


parse_url_path: Parser[str] = Parser(
    "an absolute URL path such as /metrics (letters, digits and / . _ - ~, at most 200 characters)",
    _url_path,
)


MIN_TOKEN_CHARS, MAX_TOKEN_CHARS = 16, 512


class SecretParser(Parser[T]):
    """A parser whose errors never show the value (a token, a password): only its source."""

    def __call__(self, raw: str, source: str) -> T:
        try:
            return self.convert(raw)
        except Rejected as why:
            raise ConfigError(f"{source} (value hidden) {why}; allowed: {self.allowed}") from None


def _token(raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    if not (value.isascii() and value.isprintable()) or any(c.isspace() for c in value):
        raise Rejected("is not allowed")
    if not MIN_TOKEN_CHARS <= len(value) <= MAX_TOKEN_CHARS:
        raise Rejected("has the wrong length")
    if not is_strong_token(value):
        raise Rejected("is too easy to guess")
    return value


parse_token: Parser[str] = SecretParser(
    f"empty (no token), or {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} printable ASCII characters without "
    f"spaces, random enough (an estimated {MIN_TOKEN_BITS} bits: no runs such as aaaa or 1234, no common "
    "words); make one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`",
    _token,
)


BROKER_SCHEMES = ("redis", "rediss")


def _broker_url(raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in BROKER_SCHEMES or not rest or any(c.isspace() for c in value):
        raise Rejected("is not allowed")
    if not (value.isascii() and value.isprintable()) or len(value) > 1000:
        raise Rejected("is not allowed")
    return value


parse_broker_url: Parser[str] = SecretParser(
    "empty (spill-over off), or redis://[[user]:password@]host[:port][/db] or rediss://... "
    "(the value is never shown: it may hold a password)",
    _broker_url,
)

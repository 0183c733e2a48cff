"""Parsers of setting values: each knows what it allows, and every failure names the source.

A parser is called with the raw text and where it came from (``APP_DEFERRED_TASK_BUDGET_SECONDS``
or ``deferred_task.budget_seconds (.ini setting)``); its ``allowed`` text is the one the error
message and the generated settings table both show.
"""

from __future__ import annotations

import base64
import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

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


MIN_GUESS_BITS = 80
"""zxcvbn's estimate a token or key must reach: 2**80 guesses. zxcvbn prices random text as brute
force, 10 guesses a character (3.3 bits), so a random 32-character value scores about 106 bits (97
the least of 3000), ``secrets.token_urlsafe(32)`` 143 (130), a Fernet key 146 (139),
``secrets.token_hex(16)`` 105 (91); ``Passw0rd-Passw0rd`` 27, a seven-letter word five times 15, a
repeated character 9, ``dashboard-metrics-token-prometheus-pyramid`` (the add-on's words) 77."""
ESTIMATED_CHARS = 48
"""zxcvbn refuses more than 72 characters, and its time grows with the square of the length: the
estimate reads this many, which holds the values the documented commands make (43 and 44
characters) whole, in about 6 ms, and at most about 0.3 s (48 l33t symbols; 0.7 s at 72)."""
OWN_WORDS = ("pyramid", "deferred", "task", "dashboard", "metrics", "prometheus", "token", "signing", "key")
"""The add-on's words, which a hurried operator types into its settings: zxcvbn tries them first."""
HARD_TO_GUESS = (
    f"at least {MIN_GUESS_BITS} bits as zxcvbn estimates the first {ESTIMATED_CHARS} characters (no words, "
    "runs such as aaaa or 1234, repeats or dates)"
)
"""What :func:`is_hard_to_guess` asks, as the allowed texts say it."""


def is_hard_to_guess(value: str) -> bool:
    """Whether zxcvbn (Dropbox's estimator, the field's well-kept library) puts the guesses
    ``value`` takes at :data:`MIN_GUESS_BITS` or more, judging its first :data:`ESTIMATED_CHARS`
    characters. A floor against mistakes (a word, a pattern), not a proof of randomness."""
    from zxcvbn import zxcvbn  # 20 ms of word lists, paid only by an app that sets a token or key

    estimate = zxcvbn(value[:ESTIMATED_CHARS], user_inputs=list(OWN_WORDS))
    return float(estimate["guesses_log10"]) / math.log10(2) >= MIN_GUESS_BITS


MIN_TOKEN_CHARS, MAX_TOKEN_CHARS = 32, 512
"""32: zxcvbn counts about 3.3 bits a random character, so fewer than 25 never reach 80 bits, and
32 reach them with room to spare."""


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
    if not is_hard_to_guess(value):
        raise Rejected("is too easy to guess")
    return value


parse_token: Parser[str] = SecretParser(
    f"empty (no token), or {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} printable ASCII characters without "
    f"spaces (at least {MIN_TOKEN_CHARS}: zxcvbn counts about 3.3 bits a random character), "
    f"{HARD_TO_GUESS}; make one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`",
    _token,
)


REDIS_SCHEMES = ("redis", "rediss")
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)\S*@", re.IGNORECASE)


def mask_url(text: str) -> str:
    """``redis://:secret@host`` → ``redis://***@host``, wherever a URL with credentials appears in
    ``text`` (an exception's message): everything between the scheme and the last ``@`` of the
    URL, so a password holding ``/`` or ``@`` is masked too."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


def _redis_url(raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in REDIS_SCHEMES or not rest or any(c.isspace() for c in value):
        raise Rejected("is not allowed")
    if not (value.isascii() and value.isprintable()) or len(value) > 1000:
        raise Rejected("is not allowed")
    return value


REDIS_URL_FORM = "redis://[[user]:password@]host[:port][/db] or rediss://... (the value is never shown: " \
    "it may hold a password)"

parse_broker_url: Parser[str] = SecretParser(f"empty (spill-over off), or {REDIS_URL_FORM}", _redis_url)

parse_dashboard_redis_url: Parser[str] = SecretParser(
    f"empty (the broker's, `deferred_task.broker_url`, when set), or {REDIS_URL_FORM}", _redis_url
)


MIN_KEY_CHARS, MAX_KEY_CHARS = 32, 1000
MAKE_SIGNING_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
MAKE_FERNET_KEY = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
FERNET_KEY_CHARS = 44
_URLSAFE_BASE64 = frozenset(string.ascii_letters + string.digits + "-_")


def _key_list(raw: str, check: Callable[[str], str | None]) -> tuple[str, ...]:
    """``a,b,c`` → the keys in order (the first one is the current key); blank → none. Each key
    is checked by ``check`` (its problem, or None), then by zxcvbn; a key listed twice is refused."""
    if not raw.strip():
        return ()
    keys = tuple(part.strip() for part in raw.split(","))
    for position, key in enumerate(keys, 1):
        if not key:
            problem: str | None = "is empty"
        elif not (key.isascii() and key.isprintable()) or any(c.isspace() for c in key):
            problem = "has characters that are not allowed"
        else:
            problem = check(key)
            if problem is None and not is_hard_to_guess(key):
                problem = "is too easy to guess (a word, a pattern or a repeat)"
        if problem is not None:
            raise Rejected(f"key {position} of {len(keys)} {problem}")
    if len(set(keys)) != len(keys):
        raise Rejected("lists the same key twice")
    return keys


def _signing_key_problem(key: str) -> str | None:
    if len(key) < MIN_KEY_CHARS:
        return f"is shorter than {MIN_KEY_CHARS} characters"
    if len(key) > MAX_KEY_CHARS:
        return f"is longer than {MAX_KEY_CHARS} characters"
    return None


def _signing_keys(raw: str) -> tuple[str, ...]:
    return _key_list(raw, _signing_key_problem)


parse_signing_keys: Parser[tuple[str, ...]] = SecretParser(
    f"empty (no key: refused while a broker is set), or keys of {MIN_KEY_CHARS} to {MAX_KEY_CHARS} "
    f"random printable ASCII characters, {HARD_TO_GUESS}, comma-separated (the first signs, any "
    f"verifies: rotation); make one with `{MAKE_SIGNING_KEY}` (the value is never shown)",
    _signing_keys,
)


def _fernet_key_problem(key: str) -> str | None:
    body = key.rstrip("=")
    if (len(key) != FERNET_KEY_CHARS or key[len(body):] != "=" or not set(body) <= _URLSAFE_BASE64
            or len(base64.urlsafe_b64decode(key)) != 32):
        return "is not a Fernet key"
    return None


def _fernet_keys(raw: str) -> tuple[str, ...]:
    return _key_list(raw, _fernet_key_problem)


parse_fernet_keys: Parser[tuple[str, ...]] = SecretParser(
    "empty (payloads not encrypted), or Fernet keys (32 random url-safe base64-encoded bytes, 44 "
    f"characters), {HARD_TO_GUESS}, comma-separated (the first encrypts, any decrypts: rotation); "
    f"make one with `{MAKE_FERNET_KEY}` (the value is never shown)",
    _fernet_keys,
)

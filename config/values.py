"""Parsing of settings values: every failure names the variable, the value and what is allowed."""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
URL_PATH_CHARACTERS = frozenset(string.ascii_letters + string.digits + "/._-~")


class ConfigError(ValueError):
    """A setting has a value the application cannot start with."""


def read_setting(
    *,
    env_var: str,
    ini_key: str,
    parse: Callable[[str, str], T],
    default: T,
    settings: Mapping[str, Any],
    environ: Mapping[str, str],
) -> T:
    """The environment wins over the .ini file; the default applies when neither sets the key."""
    if env_var in environ:
        return parse(environ[env_var], env_var)
    if ini_key in settings:
        return parse(str(settings[ini_key]), f"{ini_key} (.ini setting)")
    return default


def parse_bool(raw: str, source: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    allowed = "/".join(sorted(TRUE_WORDS)) + " or " + "/".join(sorted(FALSE_WORDS))
    raise ConfigError(f"{source}={raw!r} is not a boolean; allowed (any case): {allowed}")


N = TypeVar("N", int, float)


def _ranged_parser(
    convert: Callable[[str], N], kind: str, minimum: N, maximum: N, note: str
) -> Callable[[str, str], N]:
    allowed = f"{kind} from {minimum:g} to {maximum:g}{note}"

    def parse(raw: str, source: str) -> N:
        try:
            value = convert(raw.strip())
        except ValueError:
            raise ConfigError(f"{source}={raw!r} is not {kind}; allowed: {allowed}") from None
        # No math.isnan() on a whole number: a 400-digit one does not fit in a float (OverflowError).
        if (isinstance(value, float) and math.isnan(value)) or not minimum <= value <= maximum:
            raise ConfigError(f"{source}={raw!r} is out of range; allowed: {allowed}")
        return value

    return parse


def seconds_parser(*, minimum: float, maximum: float, note: str = "") -> Callable[[str, str], float]:
    return _ranged_parser(float, "a number of seconds", float(minimum), float(maximum), note)


def int_parser(*, minimum: int, maximum: int) -> Callable[[str, str], int]:
    return _ranged_parser(int, "a whole number", minimum, maximum, "")


def choice_parser(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(raw: str, source: str) -> str:
        value = raw.strip().upper() if all(c.isupper() for c in choices) else raw.strip().lower()
        if value not in choices:
            raise ConfigError(f"{source}={raw!r} is not allowed; allowed (any case): {', '.join(choices)}")
        return value

    return parse


def parse_path(raw: str, source: str) -> str:
    if not raw.strip():
        raise ConfigError(f"{source}={raw!r} is empty; allowed: a file path such as logs/deferred_task.log")
    return raw.strip()


def parse_url_path(raw: str, source: str) -> str:
    """An absolute URL path made of plain characters, such as /metrics or /_internal/metrics."""
    value = raw.strip()
    plain = value.startswith("/") and "//" not in value and set(value) <= URL_PATH_CHARACTERS
    if not plain or len(value) > 200:
        raise ConfigError(
            f"{source}={raw!r} is not allowed; allowed: an absolute URL path such as /metrics "
            "(letters, digits and / . _ - ~, at most 200 characters)"
        )
    return value

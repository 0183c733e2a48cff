"""Reading integration settings from the environment.

Every error names the variable, the value (never for secrets) and what is allowed, so a
misconfigured deployment fails at start-up with a message that says how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from pyramid_deferred.values import int_parser, seconds_parser

from app.services.secret import Secret


def read_text(environ: Mapping[str, str], name: str) -> str | None:
    """The stripped value, or None when unset or blank (blank means "not configured")."""
    value = environ.get(name, "").strip()
    return value or None


def read_secret(environ: Mapping[str, str], name: str) -> Secret | None:
    value = read_text(environ, name)
    if value is not None and any(c.isspace() for c in value):
        raise ValueError(
            f"{name} contains whitespace (value hidden); allowed: the credential alone"
        )
    return Secret(value) if value is not None else None


def read_seconds(
    environ: Mapping[str, str], name: str, default: float, *, minimum: float, maximum: float
) -> float:
    raw = read_text(environ, name)
    return default if raw is None else seconds_parser(minimum=minimum, maximum=maximum)(raw, name)


def read_int(
    environ: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int
) -> int:
    raw = read_text(environ, name)
    return default if raw is None else int_parser(minimum=minimum, maximum=maximum)(raw, name)


def read_matching(
    environ: Mapping[str, str], name: str, pattern: str, allowed: str, default: str | None = None
) -> str | None:
    raw = read_text(environ, name)
    if raw is None:
        return default
    if re.fullmatch(pattern, raw) is None:
        raise ValueError(f"{name}={raw!r} is not allowed; allowed: {allowed}")
    return raw


def read_url(environ: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    """An http(s) base URL without credentials, query or fragment, returned without a trailing /.

    Credentials in a URL would end up in logs and exception messages, hence refused.
    """
    raw = read_text(environ, name)
    if raw is None:
        return default
    allowed = "an http:// or https:// URL with a host and no user:password@, ?query or #fragment"
    try:
        parts = urlsplit(raw)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        raise ValueError(f"{name} is not a valid URL; allowed: {allowed}") from None
    if parts.username is not None or parts.password is not None:
        # The value itself is not echoed: it contains a credential.
        raise ValueError(f"{name} contains user:password@; allowed: {allowed}")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"{name}={raw!r} is not allowed; allowed: {allowed}")
    return raw.rstrip("/")


def require_all_or_none(environ: Mapping[str, str], names: tuple[str, ...]) -> bool:
    """True when every one of ``names`` is set, False when none is; half a set is an error."""
    present = [n for n in names if read_text(environ, n) is not None]
    if not present:
        return False
    missing = [n for n in names if n not in present]
    if missing:
        raise ValueError(
            f"{', '.join(present)} set but {', '.join(missing)} not; allowed: set all of "
            f"{', '.join(names)} to send, or none of them for dry-run"
        )
    return True

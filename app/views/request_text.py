"""What the shop takes from a request's own headers for Meta and Matomo, cut to size and cleaned
before it is sent on (or could reach a log line): a client picks these headers, and a 150 KB
Referer must not become a 150 KB event.
"""

from __future__ import annotations

import re

MAX_USER_AGENT_CHARS = 512
"""Browsers send about 150; Client Hints froze them short."""
MAX_ACCEPT_LANGUAGE_CHARS = 100
_LANGUAGE_RANGE = re.compile(r"(?:[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)(?:;q=[01](?:\.[0-9]{0,3})?)?")


def user_agent(raw: str | None) -> str | None:
    """Printable ASCII (anything else becomes ``?``), at most ``MAX_USER_AGENT_CHARS``; None if blank."""
    if raw is None:
        return None
    text = "".join(char if " " <= char <= "~" else "?" for char in raw[:MAX_USER_AGENT_CHARS]).strip()
    return text or None


def accept_language(raw: str | None) -> str | None:
    """The leading language ranges that fit in ``MAX_ACCEPT_LANGUAGE_CHARS`` (``pl-PL,pl;q=0.9``);
    None when the header is absent or its first range is not one."""
    if raw is None:
        return None
    head = raw[: MAX_ACCEPT_LANGUAGE_CHARS + 1]
    items = head.split(",")
    if len(raw) > len(head):
        items.pop()  # it may have been cut
    kept: list[str] = []
    for item in (item.strip() for item in items):
        if not _LANGUAGE_RANGE.fullmatch(item) or len(",".join([*kept, item])) > MAX_ACCEPT_LANGUAGE_CHARS:
            break
        kept.append(item)
    return ",".join(kept) or None

"""Headers every response of the shop carries: no framing by another site (clickjacking), no
content-type sniffing, and no full URL in the Referer sent to other sites (a page's query may
hold a campaign id, or worse).

A response that sets one of them itself (the live page's stricter policy) keeps its own.
"""

from __future__ import annotations

from pyramid.events import NewResponse

SECURITY_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)


def add_security_headers(event: NewResponse) -> None:
    """A ``NewResponse`` subscriber: every response Pyramid returns, error pages included."""
    headerlist = event.response.headerlist
    present = {name.lower() for name, _ in headerlist}
    headerlist.extend((name, value) for name, value in SECURITY_HEADERS if name.lower() not in present)

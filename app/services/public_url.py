"""The URLs the shop tells Meta and Matomo about: on the shop's configured public origin, never
on the request's Host header (a client sets that: ``Host: evil.example`` would otherwise put
``http://evil.example/...`` into Meta's ``event_source_url``), and carrying only the query
parameters that attribute a visit to a campaign: ``?email=...`` or ``?token=...`` stay home.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MAX_URL_CHARS = 2048
"""A URL longer than this (or not printable ASCII: browsers send URLs percent-encoded) is dropped."""
MAX_TRACKING_VALUE_CHARS = 500
"""Meta's click ids (fbclid) fit; a longer value is dropped, not cut (a cut id matches nothing)."""
MAX_TRACKING_PARAMETERS = 20
TRACKING_PARAMETERS = frozenset({
    "fbclid",  # Meta
    "gclid", "gbraid", "wbraid", "dclid",  # Google Ads, Campaign Manager
    "msclkid",  # Microsoft Ads
    "ttclid",  # TikTok
    "twclid",  # X
    "li_fat_id",  # LinkedIn
})
TRACKING_PREFIXES = ("utm_", "mtm_", "pk_")
"""Google Analytics' campaign parameters (``utm_source``...), Matomo's (``mtm_campaign``, and the
older ``pk_campaign``)."""
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_tracking_parameter(name: str) -> bool:
    return name in TRACKING_PARAMETERS or (name.startswith(TRACKING_PREFIXES) and len(name) <= 40)


def tracking_query(query: str) -> str:
    """Only the campaign parameters of ``query`` (in their order), re-encoded; empty without them."""
    kept = [(name, value) for name, value in parse_qsl(query)
            if is_tracking_parameter(name) and len(value) <= MAX_TRACKING_VALUE_CHARS]
    return urlencode(kept[:MAX_TRACKING_PARAMETERS])


def _plain_url(candidate: object) -> str | None:
    """``candidate`` if it is a string a browser could send as a URL: printable ASCII, not too long."""
    if not isinstance(candidate, str) or not 0 < len(candidate) <= MAX_URL_CHARS:
        return None
    return candidate if all("!" <= char <= "~" for char in candidate) else None


def referrer_url(candidate: object) -> str | None:
    """Where a visitor came from (any site): its http(s) URL without user, fragment or any query
    parameter but the campaign ones; None for anything else."""
    url = _plain_url(candidate)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not hostname:
        return None
    netloc = hostname if port is None else f"{hostname}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, tracking_query(parts.query), ""))


class PublicOrigin:
    """``https://shop.example.com``: where the shop's pages are, as visitors see them."""

    def __init__(self, origin: str) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) origin such as https://shop.example.com: {origin!r}")
        self.scheme = parts.scheme
        self.hostname = parts.hostname
        self.port = parts.port or DEFAULT_PORTS[parts.scheme]
        self.netloc = parts.netloc.lower()
        self.origin = f"{self.scheme}://{self.netloc}"

    def __repr__(self) -> str:
        return f"PublicOrigin({self.origin!r})"

    def url(self, path: str, query: str = "") -> str:
        """The page at ``path`` (as sent, percent-encoded), with the campaign parameters of ``query``."""
        path = path if path.startswith("/") else "/" + path
        return urlunsplit((self.scheme, self.netloc, path, tracking_query(query), ""))

    def same_origin_url(self, candidate: object) -> str | None:
        """``candidate`` rebuilt on this origin (campaign parameters only, no fragment) if it is a
        URL of this origin; None otherwise: a forged value is dropped, never logged or sent on."""
        url = _plain_url(candidate)
        if url is None:
            return None
        try:
            parts = urlsplit(url)
            same = (parts.scheme == self.scheme and parts.hostname == self.hostname
                    and (parts.port or DEFAULT_PORTS.get(parts.scheme)) == self.port
                    and parts.username is None and parts.password is None)
        except ValueError:
            return None
        return self.url(parts.path or "/", parts.query) if same else None

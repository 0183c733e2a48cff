"""Who may see the dashboard: the token's holders, and the browsers the page's form logged in.

- The token comes as the ``X-Dashboard-Token`` header, as ``Authorization: Bearer``, or typed into
  the page's form. A wrong one (an empty one included) is a failed attempt: failures are counted
  per client address and overall (:class:`~pyramid_deferred.dashboard.throttle.Throttle`), and a
  throttled client's token is not even compared until its window ends.
- A login sets a cookie ``v1.<issued at>.<nonce>.<HMAC>``: the HMAC, keyed with the token, covers
  the issue time and a random nonce, so each login's cookie is its own, it expires on the server
  after ``max_age_seconds`` whatever the browser keeps, and a new token ends every login at once.
- A form post from another site is refused before its token is looked at: browsers say where a
  request comes from (``Sec-Fetch-Site``; ``Origin`` in older ones), and a page elsewhere must not
  be able to make its visitors' browsers guess.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from pyramid.request import Request

from pyramid_deferred.core.log import get_logger
from pyramid_deferred.dashboard.throttle import Throttle

log = get_logger(__name__)

TOKEN_HEADER = "X-Dashboard-Token"
COOKIE_NAME = "deferred_dashboard"
COOKIE_CONTEXT = b"pyramid-deferred dashboard login v1"
_COOKIE = re.compile(r"v1\.([0-9]{1,12})\.([0-9a-f]{32})\.([0-9a-f]{64})")
CLOCK_SKEW_SECONDS = 60.0
"""A cookie issued this far in the future (another worker's clock) is still taken."""
MAX_CLIENTS = 10_000
"""Client addresses whose failures are remembered at once (bounds memory under a spread attack)."""
EVERYONE = "*"
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    """403: no token, a wrong one, an expired or forged cookie."""
    THROTTLED = "throttled"
    """429: too many wrong tokens lately, from this address or from everyone."""


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    retry_after_seconds: int = 0


ALLOWED, DENIED = Decision(Verdict.ALLOWED), Decision(Verdict.DENIED)


class LoginCookies:
    """The login cookie's value, issued and checked; keyed with the token, which it never holds."""

    def __init__(self, token: str, max_age_seconds: float) -> None:
        self._key = hashlib.sha256(COOKIE_CONTEXT + token.encode()).digest()
        self.max_age_seconds = max_age_seconds

    def __repr__(self) -> str:
        return f"LoginCookies(max_age_seconds={self.max_age_seconds:g})"

    def issue(self, now: float) -> str:
        claims = f"v1.{int(now)}.{os.urandom(16).hex()}"
        return f"{claims}.{self._mac(claims)}"

    def valid(self, value: str, now: float) -> bool:
        match = _COOKIE.fullmatch(value)
        if match is None:
            return False
        claims, _, mac = value.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(claims)):
            return False
        issued = int(match[1])
        return issued - CLOCK_SKEW_SECONDS <= now < issued + self.max_age_seconds

    def _mac(self, claims: str) -> str:
        return hmac.new(self._key, claims.encode(), hashlib.sha256).hexdigest()


def presented_token(request: Request) -> str | None:
    """The token a request's headers present (possibly empty), or None when they present none."""
    header = request.headers.get(TOKEN_HEADER)
    if header is not None:
        return str(header)
    scheme, _, credentials = str(request.headers.get("Authorization", "")).partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def login_cookie(request: Request) -> str | None:
    """The login cookie's value; None when absent, or when the Cookie header is not UTF-8 (WebOb
    raises while parsing it: a 403, not a 500)."""
    try:
        value = request.cookies.get(COOKIE_NAME)
    except UnicodeDecodeError:
        return None
    return str(value) if value is not None else None


def is_cross_site(request: Request) -> bool:
    """A browser says the request comes from a page of another origin (or hides where from)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return str(fetch_site) not in SAME_SITE_FETCHES
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser's cross-site form: browsers send Origin with every POST
        return False
    try:
        netloc = urlsplit(str(origin)).netloc
    except ValueError:
        return True
    return origin == "null" or netloc.lower() != str(request.host).lower()


class Guard:
    """The dashboard's access rule, with its throttles; ``clock`` (wall time) may be replaced."""

    def __init__(
        self,
        token: str,
        *,
        login_seconds: float,
        max_failures_per_client: int,
        max_failures: int,
        window_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._token = token.encode()
        self.cookies = LoginCookies(token, login_seconds)
        self.per_client = Throttle(limit=max_failures_per_client, window_seconds=window_seconds,
                                   max_keys=MAX_CLIENTS)
        self.overall = Throttle(limit=max_failures, window_seconds=window_seconds, max_keys=1)
        self.clock = clock
        self._pseudonym_key = os.urandom(16)

    def __repr__(self) -> str:
        return f"Guard(open={self.open}, cookies={self.cookies!r})"

    @property
    def open(self) -> bool:
        """No token configured (development): everyone may see the page."""
        return not self._token

    def check(self, request: Request) -> Decision:
        """A request for the page or its data: a valid login cookie, or the token in a header."""
        if self.open:
            return ALLOWED
        cookie = login_cookie(request)
        if cookie is not None and self.cookies.valid(cookie, self.clock()):
            return ALLOWED
        presented = presented_token(request)
        return DENIED if presented is None else self.attempt(request, presented)

    def attempt(self, request: Request, presented: str) -> Decision:
        """One try of the token (a header, or the form's field): compared unless throttled, and
        counted when wrong."""
        now, client = self.clock(), request.remote_addr or "-"
        waits = [wait for wait in (self.per_client.retry_after(client, now),
                                   self.overall.retry_after(EVERYONE, now)) if wait is not None]
        if waits:
            return Decision(Verdict.THROTTLED, max(1, round(max(waits))))
        if self.token_matches(presented):
            return ALLOWED
        if self.per_client.failed(client, now):
            log.warning(
                "Dashboard login throttled for one client address (%s): %s wrong tokens within %g s; "
                "its token attempts get 429 until its window ends",
                self._pseudonym(client), self.per_client.limit, self.per_client.window_seconds,
            )
        if self.overall.failed(EVERYONE, now):
            log.warning(
                "Dashboard login throttled for every client: %s wrong tokens within %g s; every "
                "token attempt gets 429 until the window ends (logged-in browsers keep their access)",
                self.overall.limit, self.overall.window_seconds,
            )
        return DENIED

    def token_matches(self, given: str) -> bool:
        if not given or self.open:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self._token)

    def _pseudonym(self, client: str) -> str:
        """A name for the address that lines of this process share, without the address itself."""
        return "client " + hmac.new(self._pseudonym_key, client.encode(), hashlib.sha256).hexdigest()[:8]

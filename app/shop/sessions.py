"""Visitors' sessions, keyed by the session cookie: each holds a cart, bookmarks and ratings.

The cookie carries a random token; the token itself is a credential, so nothing leaves the
shop with it. Integrations get :attr:`ShopSession.visitor_id`, a one-way digest of it.

The token is renewed at sign-in, so what must outlive it has its own key: the cart's
:attr:`ShopSession.cart_id`, and the visitor key of a separate long-lived cookie
(:func:`new_visitor_key`), which identifies the browser to analytics across sign-ins.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

from app.shop.catalogue import Product

MAX_SESSIONS = 10_000
MAX_QUANTITY = 99
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
_VISITOR_KEY = re.compile(r"[0-9a-f]{32}")


def new_token() -> str:
    return secrets.token_urlsafe(24)  # 32 characters


def is_token(value: str | None) -> bool:
    return value is not None and _TOKEN.fullmatch(value) is not None


def new_visitor_key() -> str:
    """The random value of a browser's long-lived visitor cookie (32 hex characters)."""
    return secrets.token_hex(16)


def is_visitor_key(value: str | None) -> bool:
    return value is not None and _VISITOR_KEY.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def total_cents(self) -> int:
        return self.product.price_cents * self.quantity


@dataclass(frozen=True, slots=True)
class CartAddition:
    """What one add to cart did: the line as it now is, and the how-manieth add to this cart
    it was (1, 2, ...), so that each add has a key of its own."""

    line: CartLine
    number: int


class ShopSession:
    """One visitor's state. Two tabs of the same visitor may write at once: methods lock."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.customer_id: str | None = None
        self.cart_id = secrets.token_hex(8)  # random, unlike the token kept across sign-in
        self._additions = 0
        self._lines: dict[str, CartLine] = {}
        self._bookmarks: set[str] = set()
        self._ratings: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def visitor_id(self) -> str:
        """16 hex characters, stable for the session (Advisable AI's session id). Matomo's
        ``_id`` comes from the visitor cookie instead: this one changes at sign-in."""
        return hashlib.sha256(self.token.encode()).hexdigest()[:16]

    @property
    def cart(self) -> list[CartLine]:
        with self._lock:
            return list(self._lines.values())

    def add_to_cart(self, product: Product, quantity: int) -> CartAddition:
        """Add ``quantity`` more; returns the line as it now is and the add's number."""
        if not 1 <= quantity <= MAX_QUANTITY:
            raise ValueError(f"quantity must be 1 to {MAX_QUANTITY}, got {quantity!r}")
        with self._lock:
            line = self._lines.get(product.id)
            total = quantity + (line.quantity if line is not None else 0)
            if total > MAX_QUANTITY:
                raise ValueError(f"at most {MAX_QUANTITY} of one product per cart")
            self._lines[product.id] = CartLine(product, total)
            self._additions += 1
            return CartAddition(self._lines[product.id], self._additions)

    def remove_from_cart(self, product_id: str) -> CartLine | None:
        with self._lock:
            return self._lines.pop(product_id, None)

    def empty_cart(self) -> list[CartLine]:
        with self._lock:
            lines, self._lines = list(self._lines.values()), {}
            return lines

    def bookmark(self, product_id: str) -> bool:
        """True if it was not bookmarked yet."""
        with self._lock:
            added = product_id not in self._bookmarks
            self._bookmarks.add(product_id)
            return added

    def remove_bookmark(self, product_id: str) -> bool:
        """True if it was bookmarked."""
        with self._lock:
            removed = product_id in self._bookmarks
            self._bookmarks.discard(product_id)
            return removed

    @property
    def bookmarks(self) -> list[str]:
        with self._lock:
            return sorted(self._bookmarks)

    def rate(self, product_id: str, stars: int) -> None:
        with self._lock:
            self._ratings[product_id] = stars

    def rating(self, product_id: str) -> int | None:
        with self._lock:
            return self._ratings.get(product_id)


class Sessions:
    """The most recently used sessions, at most ``max_sessions`` of them (the oldest go first),
    so that clients that never send the cookie back (bots) cannot grow memory without bound."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._sessions: OrderedDict[str, ShopSession] = OrderedDict()
        self._max = max_sessions
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, token: str | None) -> ShopSession:
        """The session of a token this shop issued and still holds; for any other token (one the
        client made up, or planted in a victim's browser, or one forgotten), a new session under a
        new token: the shop never adopts a token it did not issue."""
        with self._lock:
            known = self._sessions.pop(token, None) if token is not None and is_token(token) else None
            session = known or ShopSession(new_token())
            self._store(session)
            return session

    def end(self, token: str | None) -> bool:
        """Forget the session of ``token`` (a logout): the token is worthless from now on. False
        when there was none."""
        with self._lock:
            return token is not None and self._sessions.pop(token, None) is not None

    def rotate(self, session: ShopSession) -> ShopSession:
        """The same state under a new token (at sign-in: a token known before it is worthless)."""
        with self._lock:
            self._sessions.pop(session.token, None)
            session.token = new_token()
            self._store(session)
            return session

    def _store(self, session: ShopSession) -> None:
        self._sessions[session.token] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)

"""Matomo: tracking calls collected during a request, sent after it in one bulk request.

:class:`MatomoService` is the process-wide sender; :meth:`MatomoService.tracker` gives each
request a :class:`MatomoTracker` to collect page views, events and orders into. The view
defers ``tracker.flush`` only when ``tracker.has_tracked``, so an untracked request costs
nothing after the response.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import string
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import httpx

from app.services.breaker import BreakerSettings, ServiceBreaker
from app.services.delivery import Delivery, Outcome, Verdict
from app.services.env import read_int, read_secret, read_url, require_all_or_none
from app.services.http_client import HttpTimeouts
from app.services.secret import Secret

SERVICE = "matomo"
DEFAULT_TIMEOUTS = HttpTimeouts(connect=1.0, read=3.0)
DEFAULT_BREAKER = BreakerSettings()
ENV_PREFIX = "MATOMO"
_VISITOR_ID = re.compile(r"[0-9a-f]{16}")
# pv_id: "6 alphanumeric characters", unique per page view (Matomo's tracking API reference).
PAGE_VIEW_ID_CHARS = 6
_PAGE_VIEW_ID = re.compile(rf"[A-Za-z0-9]{{{PAGE_VIEW_ID_CHARS}}}")
_ALPHANUMERIC = string.ascii_letters + string.digits


def new_page_view_id() -> str:
    """A page view's ``pv_id``: 6 random alphanumeric characters, as matomo.js makes them."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(PAGE_VIEW_ID_CHARS))


def is_page_view_id(value: str | None) -> bool:
    return value is not None and _PAGE_VIEW_ID.fullmatch(value) is not None

Params = dict[str, str]


@dataclass(frozen=True, slots=True)
class MatomoSettings:
    """Live when both the Matomo URL and ``token_auth`` are set; dry-run when neither is.

    The token is needed because requests are sent after the fact, on the visitor's behalf:
    overriding the visitor's IP (``cip``) requires authentication.
    """

    base_url: str | None = None
    token_auth: Secret | None = None
    site_id: int = 1
    timeouts: HttpTimeouts = DEFAULT_TIMEOUTS
    breaker: BreakerSettings = DEFAULT_BREAKER

    def __post_init__(self) -> None:
        if (self.base_url is None) != (self.token_auth is None):
            raise ValueError("base_url and token_auth go together: set both or neither")
        if self.site_id < 1:
            raise ValueError(f"site_id must be at least 1, got {self.site_id!r}")

    @property
    def tracking_url(self) -> str | None:
        return f"{self.base_url}/matomo.php" if self.base_url is not None else None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> MatomoSettings:
        require_all_or_none(environ, ("MATOMO_URL", "MATOMO_TOKEN_AUTH"))
        return cls(
            base_url=read_url(environ, "MATOMO_URL"),
            token_auth=read_secret(environ, "MATOMO_TOKEN_AUTH"),
            site_id=read_int(environ, "MATOMO_SITE_ID", 1, minimum=1, maximum=10**9),
            timeouts=HttpTimeouts.from_environ(environ, ENV_PREFIX, DEFAULT_TIMEOUTS),
            breaker=BreakerSettings.from_environ(environ, ENV_PREFIX),
        )


@dataclass(frozen=True, slots=True)
class MatomoVisit:
    """What Matomo needs to know about the request being tracked.

    ``url`` is the page the visitor is on (for a call the page's script makes to the API, that
    page, not the API's URL). ``visitor_id`` (``_id``) must not change for a visitor: derive it
    from a long-lived first-party cookie, not from a session renewed at sign-in.
    ``page_view_id`` (``pv_id``) links a page view and the events that happened on that page.
    """

    url: str
    visitor_id: str
    client_ip: str | None = None
    user_agent: str | None = None
    user_id: str | None = None
    referrer: str | None = None
    language: str | None = None
    page_view_id: str | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"url must be an http(s) URL, got {self.url!r}")
        if not _VISITOR_ID.fullmatch(self.visitor_id):
            raise ValueError(
                f"visitor_id must be 16 lowercase hex characters, got {self.visitor_id!r}"
            )
        if self.page_view_id is not None and not is_page_view_id(self.page_view_id):
            raise ValueError(
                f"page_view_id must be {PAGE_VIEW_ID_CHARS} alphanumeric characters, "
                f"got {self.page_view_id!r}"
            )

    @staticmethod
    def visitor_id_for(key: str) -> str:
        """A stable visitor id derived from a long-lived visitor cookie (which it does not reveal)."""
        return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]

    def params(self) -> Params:
        params = {"url": self.url, "_id": self.visitor_id}
        optional = {
            "uid": self.user_id,
            "cip": self.client_ip,
            "ua": self.user_agent,
            "urlref": self.referrer,
            "lang": self.language,
            "pv_id": self.page_view_id,
        }
        params.update({key: value for key, value in optional.items() if value})
        return params


@dataclass(frozen=True, slots=True)
class MatomoItem:
    sku: str
    name: str
    price: float
    quantity: int = 1
    category: str = ""

    def __post_init__(self) -> None:
        if not self.sku:
            raise ValueError("sku must not be empty")
        _check_amount("price", self.price)
        if self.quantity < 1:
            raise ValueError(f"quantity must be at least 1, got {self.quantity!r}")


class MatomoService:
    """Sends a request's collected tracking calls as one bulk request to ``matomo.php``."""

    def __init__(
        self,
        settings: MatomoSettings,
        http: httpx.Client,
        breaker: ServiceBreaker,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._delivery = Delivery(
            SERVICE, http, breaker, settings.timeouts, secrets=[settings.token_auth]
        )

    @property
    def max_cost_seconds(self) -> float:
        return self._delivery.max_cost_seconds

    @property
    def site_id(self) -> int:
        return self._settings.site_id

    def tracker(self, visit: MatomoVisit) -> MatomoTracker:
        return MatomoTracker(self, visit, clock=self._clock)

    def send_bulk(self, requests: Sequence[str]) -> Outcome:
        if not requests:
            return Outcome.EMPTY
        body: dict[str, object] = {"requests": list(requests)}
        url, token = self._settings.tracking_url, self._settings.token_auth
        if url is None or token is None:
            return self._delivery.dry_run("flush", body, subject=_bulk_subject(requests))
        return self._delivery.post_json(
            "flush", url, {**body, "token_auth": token.reveal()}, check=_check_answer
        )


class MatomoTracker:
    """One request's tracking calls, each kept as the query string Matomo's bulk API takes."""

    def __init__(
        self, service: MatomoService, visit: MatomoVisit, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._service = service
        self._visit = visit
        self._clock = clock
        self._requests: list[str] = []

    @property
    def has_tracked(self) -> bool:
        return bool(self._requests)

    @property
    def requests(self) -> tuple[str, ...]:
        return tuple(self._requests)

    @property
    def max_cost_seconds(self) -> float:
        return self._service.max_cost_seconds

    def track_page_view(self, title: str, *, url: str | None = None) -> None:
        self._add({"action_name": title}, url)

    def track_event(
        self, category: str, action: str, *, name: str | None = None, value: float | None = None
    ) -> None:
        if not category or not action:
            raise ValueError("an event needs a category and an action")
        params = {"e_c": category, "e_a": action}
        if name:
            params["e_n"] = name
        if value is not None:
            _check_amount("value", value, allow_negative=True)
            params["e_v"] = _number(value)
        self._add(params, None)

    def track_ecommerce_order(
        self,
        order_id: str,
        revenue: float,
        items: Sequence[MatomoItem],
        *,
        subtotal: float | None = None,
        tax: float | None = None,
        shipping: float | None = None,
        discount: float | None = None,
    ) -> None:
        if not order_id:
            raise ValueError("order_id must not be empty")
        _check_amount("revenue", revenue)
        params = {
            "idgoal": "0",
            "ec_id": order_id,
            "revenue": _number(revenue),
            "ec_items": json.dumps(
                [[i.sku, i.name, i.category, i.price, i.quantity] for i in items],
                separators=(",", ":"),
                ensure_ascii=False,
            ),
        }
        totals = {"ec_st": subtotal, "ec_tx": tax, "ec_sh": shipping, "ec_dt": discount}
        for key, amount in totals.items():
            if amount is not None:
                _check_amount(key, amount)
                params[key] = _number(amount)
        self._add(params, None)

    def flush(self) -> Outcome:
        """Send everything tracked so far as one bulk request (the deferred task)."""
        requests, self._requests = self._requests, []
        return self._service.send_bulk(requests)

    def _add(self, specific: Params, url: str | None) -> None:
        params: Params = {"idsite": str(self._service.site_id), "rec": "1", "apiv": "1"}
        params.update(self._visit.params())
        if url is not None:
            params["url"] = url
        params["cdt"] = str(int(self._clock()))  # when it happened, not when it is sent
        params.update(specific)
        self._requests.append("?" + urlencode(params))


def _check_answer(response: httpx.Response) -> Verdict | None:
    """Matomo counts the requests it could not use; any of ours is a bug in how we built it."""
    try:
        answer = response.json()
    except ValueError:
        return None
    invalid = answer.get("invalid") if isinstance(answer, dict) else None
    if isinstance(invalid, int) and invalid > 0:  # the counts only: the answer may quote a request
        tracked = answer.get("tracked")
        of = f" ({tracked} tracked)" if isinstance(tracked, int) else ""
        return Verdict(Outcome.REJECTED, f"{invalid} invalid tracking request(s){of}")
    return None


def _bulk_subject(requests: Sequence[str]) -> str:
    """What a bulk request holds, for its dry-run line: how many calls, and the orders among them
    (ids, never a URL: its query may hold anything)."""
    orders = [value for request in requests for key, value in parse_qsl(request.removeprefix("?"))
              if key == "ec_id"]
    return f"{len(requests)} tracking request(s)" + (f", order {', '.join(orders)}" if orders else "")


def _number(amount: float) -> str:
    return str(amount)  # shortest exact form: 10, 12.5, 0.1


def _check_amount(name: str, amount: float, *, allow_negative: bool = False) -> None:
    if not math.isfinite(amount) or (amount < 0 and not allow_negative):
        allowed = "a finite amount" if allow_negative else "a finite amount >= 0"
        raise ValueError(f"{name} must be {allowed}, got {amount!r}")

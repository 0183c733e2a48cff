"""Meta Conversions API: server-side copies of the browser pixel's shop events."""

from __future__ import annotations

import ipaddress
import math
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import httpx

from app.services.breaker import BreakerSettings, ServiceBreaker
from app.services.delivery import Delivery, Outcome
from app.services.env import read_matching, read_secret, read_url, require_all_or_none
from app.services.http_client import HttpTimeouts
from app.services.meta_hashing import hash_email, hash_external_id, hash_phone
from app.services.secret import Secret

SERVICE = "meta"
DEFAULT_TIMEOUTS = HttpTimeouts(connect=1.0, read=2.0)
DEFAULT_BREAKER = BreakerSettings()
ENV_PREFIX = "META"
GRAPH_URL = "https://graph.facebook.com"
# The Graph API version of the facebook-business SDK this code is tested with (its
# apiconfig.API_VERSION; tests/unit/services/test_meta.py compares them): to move it, bump the
# SDK in pyproject's test extra and this constant together, or set META_API_VERSION.
API_VERSION = "v26.0"
_CURRENCY = re.compile(r"[A-Z]{3}")
# fbclid: Meta's click ids are base64url text; bounded so that a forged one cannot bloat events.
MAX_FBCLID_CHARS = 500
_FBCLID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_FBCLID_CHARS}}}")
# _fbc / _fbp cookies: fb.<subdomain index>.<creation ms>.<payload>[.<appendix>]
_FB_COOKIE = re.compile(r"fb\.[0-9]\.[0-9]{1,16}\.[A-Za-z0-9_.-]{1,600}")
FBC_SUBDOMAIN_INDEX = 1  # the cookie is set for the shop's domain (example.com: 1)


def _check_amount(name: str, amount: float | None) -> None:
    if amount is not None and (not math.isfinite(amount) or amount < 0):
        raise ValueError(f"{name} must be a finite amount >= 0, got {amount!r}")


def fbc_from_fbclid(fbclid: str, created_ms: int) -> str | None:
    """The ``fbc`` Meta documents building from an ``fbclid`` query parameter when there is no
    ``_fbc`` cookie: ``fb.1.<creation time in ms>.<fbclid>``. None for a value that is not a
    click id (garbage in a URL must not reach Meta, a log line or a cookie)."""
    if not _FBCLID.fullmatch(fbclid):
        return None
    return f"fb.{FBC_SUBDOMAIN_INDEX}.{created_ms}.{fbclid}"


def valid_fb_cookie(value: str | None) -> str | None:
    """An ``_fbc``/``_fbp`` cookie as the pixel writes it, or None for anything else."""
    return value if value is not None and _FB_COOKIE.fullmatch(value) else None


class MetaEventName(StrEnum):
    PURCHASE = "Purchase"
    ADD_TO_CART = "AddToCart"
    VIEW_CONTENT = "ViewContent"
    INITIATE_CHECKOUT = "InitiateCheckout"
    SEARCH = "Search"
    COMPLETE_REGISTRATION = "CompleteRegistration"

    @property
    def action(self) -> str:
        """``add_to_cart`` for ``AddToCart``: the second half of the task name."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.value).lower()


@dataclass(frozen=True, slots=True)
class MetaSettings:
    """Live when both pixel id and access token are set; dry-run when neither is."""

    pixel_id: str | None = None
    access_token: Secret | None = None
    graph_url: str = GRAPH_URL
    api_version: str = API_VERSION
    test_event_code: str | None = None
    default_phone_country_code: str | None = None
    timeouts: HttpTimeouts = DEFAULT_TIMEOUTS
    breaker: BreakerSettings = DEFAULT_BREAKER

    def __post_init__(self) -> None:
        if (self.pixel_id is None) != (self.access_token is None):
            raise ValueError("pixel_id and access_token go together: set both or neither")

    @property
    def live(self) -> bool:
        return self.pixel_id is not None and self.access_token is not None

    @property
    def events_url(self) -> str | None:
        if self.pixel_id is None:
            return None
        return f"{self.graph_url}/{self.api_version}/{self.pixel_id}/events"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> MetaSettings:
        require_all_or_none(environ, ("META_PIXEL_ID", "META_ACCESS_TOKEN"))
        return cls(
            pixel_id=read_matching(environ, "META_PIXEL_ID", r"\d{5,20}", "the numeric pixel id"),
            access_token=read_secret(environ, "META_ACCESS_TOKEN"),
            graph_url=read_url(environ, "META_GRAPH_URL", GRAPH_URL) or GRAPH_URL,
            api_version=read_matching(
                environ,
                "META_API_VERSION",
                r"v\d{1,3}\.\d{1,2}",
                "a version such as v26.0",
                API_VERSION,
            )
            or API_VERSION,
            test_event_code=read_matching(
                environ, "META_TEST_EVENT_CODE", r"[A-Za-z0-9_-]{1,64}", "a code such as TEST12345"
            ),
            default_phone_country_code=read_matching(
                environ,
                "META_DEFAULT_PHONE_COUNTRY_CODE",
                r"[1-9]\d{0,2}",
                "a calling code of 1 to 3 digits without + (such as 48)",
            ),
            timeouts=HttpTimeouts.from_environ(environ, ENV_PREFIX, DEFAULT_TIMEOUTS),
            breaker=BreakerSettings.from_environ(environ, ENV_PREFIX),
        )


@dataclass(frozen=True, slots=True)
class MetaUserData:
    """Who did it. Contact details stay out of the repr; they are hashed when sent."""

    client_ip_address: str
    client_user_agent: str
    email: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    external_id: str | None = field(default=None, repr=False)
    fbp: str | None = None
    fbc: str | None = None

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.client_ip_address)  # raises ValueError naming the value
        if not self.client_user_agent.strip():
            # Meta requires it for website events; a request without one (a bot) should not
            # produce a Meta event at all.
            raise ValueError("client_user_agent must not be empty for a website event")


@dataclass(frozen=True, slots=True)
class MetaContent:
    id: str
    quantity: int = 1
    item_price: float | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a content id must not be empty")
        if self.quantity < 1:
            raise ValueError(f"quantity must be at least 1, got {self.quantity!r}")
        _check_amount("item_price", self.item_price)


@dataclass(frozen=True, slots=True)
class MetaCustomData:
    value: float | None = None
    currency: str | None = None
    contents: tuple[MetaContent, ...] = ()
    order_id: str | None = None
    search_string: str | None = None
    num_items: int | None = None

    def __post_init__(self) -> None:
        _check_amount("value", self.value)
        if self.currency is not None and not _CURRENCY.fullmatch(self.currency):
            raise ValueError(
                f"currency must be an ISO 4217 code such as EUR, got {self.currency!r}"
            )
        if (self.value is None) != (self.currency is None):
            raise ValueError("value and currency go together: set both or neither")


@dataclass(frozen=True, slots=True)
class MetaEvent:
    """One shop event. ``event_id`` is shared with the browser pixel so Meta can deduplicate
    (the pixel's ``eventID``): deterministic where the event has a natural key (the order for a
    Purchase), a random uuid4 otherwise, which the page then hands to the pixel. ``event_time``
    is when it happened (the request), not when the deferred task sends it; ``event_source_url``
    is the browser's page, not the API call's URL."""

    event_name: MetaEventName
    event_source_url: str
    user_data: MetaUserData
    custom_data: MetaCustomData = field(default_factory=MetaCustomData)
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    event_time: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if not isinstance(self.event_name, MetaEventName):
            raise TypeError(f"event_name must be a MetaEventName, got {self.event_name!r}")
        if not self.event_source_url.startswith(("https://", "http://")):
            raise ValueError(
                f"event_source_url must be an http(s) URL, got {self.event_source_url!r}"
            )
        if self.event_name is MetaEventName.PURCHASE and self.custom_data.value is None:
            raise ValueError("a Purchase event needs custom_data.value and custom_data.currency")
        if (
            self.custom_data.num_items is not None
            and self.event_name is not MetaEventName.INITIATE_CHECKOUT
        ):
            raise ValueError("custom_data.num_items is documented for InitiateCheckout only")
        if not self.event_id:
            raise ValueError("event_id must not be empty")

    @property
    def task_name(self) -> str:
        return f"{SERVICE}.{self.event_name.action}"


class MetaConversionsService:
    """Sends one Conversions API event per call; the access token travels in the JSON body,
    never in the URL, so it cannot appear in an exception message or an access log."""

    def __init__(self, settings: MetaSettings, http: httpx.Client, breaker: ServiceBreaker) -> None:
        self._settings = settings
        self._delivery = Delivery(
            SERVICE, http, breaker, settings.timeouts, secrets=[settings.access_token]
        )

    @property
    def max_cost_seconds(self) -> float:
        return self._delivery.max_cost_seconds

    def payload(self, event: MetaEvent) -> dict[str, object]:
        """The request body without the access token."""
        body: dict[str, object] = {"data": [self._event_json(event)]}
        if self._settings.test_event_code is not None:
            body["test_event_code"] = self._settings.test_event_code
        return body

    def send_event(self, event: MetaEvent) -> Outcome:
        body = self.payload(event)
        url, token = self._settings.events_url, self._settings.access_token
        if url is None or token is None:
            return self._delivery.dry_run(event.event_name.action, body, subject=f"event {event.event_id}")
        return self._delivery.post_json(
            event.event_name.action, url, {**body, "access_token": token.reveal()}
        )

    def _event_json(self, event: MetaEvent) -> dict[str, object]:
        return {
            "event_name": event.event_name.value,
            "event_time": event.event_time,
            "event_id": event.event_id,
            "action_source": "website",
            "event_source_url": event.event_source_url,
            "user_data": self._user_data_json(event.user_data),
            "custom_data": _custom_data_json(event.custom_data),
        }

    def _user_data_json(self, user: MetaUserData) -> dict[str, object]:
        hashed = {
            "em": hash_email(user.email) if user.email else None,
            "ph": hash_phone(user.phone, self._settings.default_phone_country_code)
            if user.phone
            else None,
            "external_id": hash_external_id(user.external_id) if user.external_id else None,
        }
        data: dict[str, object] = {key: [value] for key, value in hashed.items() if value}
        data["client_ip_address"] = user.client_ip_address
        data["client_user_agent"] = user.client_user_agent
        if user.fbp:
            data["fbp"] = user.fbp
        if user.fbc:
            data["fbc"] = user.fbc
        return data


def _custom_data_json(custom: MetaCustomData) -> dict[str, object]:
    data: dict[str, object] = {}
    if custom.value is not None:
        data["value"] = custom.value
        data["currency"] = custom.currency
    if custom.contents:
        data["content_type"] = "product"
        data["content_ids"] = [c.id for c in custom.contents]
        data["contents"] = [_content_json(c) for c in custom.contents]
    optional = {
        "order_id": custom.order_id,
        "search_string": custom.search_string,
        "num_items": custom.num_items,
    }
    data.update({key: value for key, value in optional.items() if value is not None})
    return data


def _content_json(content: MetaContent) -> dict[str, object]:
    data: dict[str, object] = {"id": content.id, "quantity": content.quantity}
    if content.item_price is not None:
        data["item_price"] = content.item_price
    return data

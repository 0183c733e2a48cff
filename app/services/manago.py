"""Manago CRM (SALESmanago API): a purchase becomes an external event on the buyer's contact.

Per purchase, two requests in one task: ``/api/contact/upsert`` with the buyer's e-mail (a
guest's contact may not exist yet, and the shop knows only the e-mail at checkout; an upsert
without consent flags changes no consent), then the event, at the endpoint SALESmanago's API v2
documents, ``/api/v2/contact/addContactExtEvent``. Field limits (SALESmanago API docs, "Adding
an external event"): ``products`` at most 512 characters (truncated here by whole ids, with a
WARNING), ``location`` at most 36 of letters, digits and ``/_-.`` (refused otherwise: a
truncated location would attribute the event to no product feed), ``externalId`` at most 255.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from loguru import logger

from app.services.breaker import BreakerSettings, ServiceBreaker
from app.services.delivery import CHANNEL, Delivery, Outcome, Verdict
from app.services.env import read_secret, read_text, read_url, require_all_or_none
from app.services.http_client import HttpTimeouts
from app.services.secret import Secret

SERVICE = "manago"
DEFAULT_TIMEOUTS = HttpTimeouts(connect=1.0, read=3.0)
DEFAULT_BREAKER = BreakerSettings()
ENV_PREFIX = "MANAGO"
UPSERT_PATH = "/api/contact/upsert"
EVENT_PATH = "/api/v2/contact/addContactExtEvent"
MAX_PRODUCTS_CHARS = 512
MAX_LOCATION_CHARS = 36
MAX_EXTERNAL_ID_CHARS = 255
CREDENTIALS = (
    "MANAGO_URL",
    "MANAGO_CLIENT_ID",
    "MANAGO_API_KEY",
    "MANAGO_API_SECRET",
    "MANAGO_OWNER",
)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CURRENCY = re.compile(r"[A-Z]{3}")
_LOCATION = re.compile(rf"[A-Za-z0-9/_.-]{{1,{MAX_LOCATION_CHARS}}}")

log = logger.bind(channel=CHANNEL, service=SERVICE)


@dataclass(frozen=True, slots=True)
class ManagoSettings:
    """Live when every credential is set; dry-run when none is.

    ``owner`` is the SALESmanago user (an e-mail) the contact belongs to; the API key and
    API secret are secrets, and so is the request signature derived from them.
    """

    base_url: str | None = None
    client_id: str | None = None
    api_key: Secret | None = None
    api_secret: Secret | None = None
    owner: str | None = None
    timeouts: HttpTimeouts = DEFAULT_TIMEOUTS
    breaker: BreakerSettings = DEFAULT_BREAKER

    def __post_init__(self) -> None:
        credentials = (self.base_url, self.client_id, self.api_key, self.api_secret, self.owner)
        if len({value is None for value in credentials}) > 1:
            raise ValueError("base_url, client_id, api_key, api_secret and owner go together")
        if self.owner is not None and not _EMAIL.fullmatch(self.owner):
            raise ValueError(f"owner must be the e-mail of a SALESmanago user, got {self.owner!r}")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ManagoSettings:
        require_all_or_none(environ, CREDENTIALS)
        owner = read_text(environ, "MANAGO_OWNER")
        if owner is not None and not _EMAIL.fullmatch(owner):
            raise ValueError(
                f"MANAGO_OWNER={owner!r} is not allowed; allowed: the e-mail of a SALESmanago user"
            )
        return cls(
            base_url=read_url(environ, "MANAGO_URL"),
            client_id=read_text(environ, "MANAGO_CLIENT_ID"),
            api_key=read_secret(environ, "MANAGO_API_KEY"),
            api_secret=read_secret(environ, "MANAGO_API_SECRET"),
            owner=owner,
            timeouts=HttpTimeouts.from_environ(environ, ENV_PREFIX, DEFAULT_TIMEOUTS),
            breaker=BreakerSettings.from_environ(environ, ENV_PREFIX),
        )


@dataclass(frozen=True, slots=True)
class ManagoPurchase:
    """A completed order, for the contact identified by ``email``."""

    email: str = field(repr=False)
    order_id: str
    product_ids: tuple[str, ...]
    value: float
    currency: str
    location: str | None = None  # the shop, when one SALESmanago account serves several
    date: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not _EMAIL.fullmatch(self.email.strip()):
            raise ValueError("email must be a valid e-mail address")
        if not 0 < len(self.order_id) <= MAX_EXTERNAL_ID_CHARS:
            raise ValueError(f"order_id must be 1 to {MAX_EXTERNAL_ID_CHARS} characters")
        if not self.product_ids or any(not p or "," in p for p in self.product_ids):
            raise ValueError("product_ids must be non-empty ids without commas")
        if not math.isfinite(self.value) or self.value < 0:
            raise ValueError(f"value must be a finite amount >= 0, got {self.value!r}")
        if not _CURRENCY.fullmatch(self.currency):
            raise ValueError(
                f"currency must be an ISO 4217 code such as EUR, got {self.currency!r}"
            )
        if self.date.tzinfo is None:
            raise ValueError("date must be timezone-aware")
        if self.location is not None and not _LOCATION.fullmatch(self.location):
            raise ValueError(
                f"location must be 1 to {MAX_LOCATION_CHARS} letters, digits or /_-. "
                f"(SALESmanago's shop identifier), got {self.location!r}"
            )

    def products(self) -> str:
        """The product ids, comma-joined, cut to SALESmanago's 512 characters by whole ids (the
        first ones kept); a WARNING says how many were left out."""
        kept: list[str] = []
        length = 0
        for product_id in self.product_ids:
            added = len(product_id) + (1 if kept else 0)
            if length + added > MAX_PRODUCTS_CHARS:
                break
            kept.append(product_id)
            length += added
        if len(kept) < len(self.product_ids):
            log.warning(
                "manago.purchase of order {!r}: products cut to {} of {} ids to stay within "
                "SALESmanago's {} characters",
                self.order_id,
                len(kept),
                len(self.product_ids),
                MAX_PRODUCTS_CHARS,
            )
        return ",".join(kept)

    @property
    def task_name(self) -> str:
        return f"{SERVICE}.purchase"


def signature(api_key: Secret, client_id: str, api_secret: Secret) -> str:
    """SALESmanago's ``sha``: SHA-1 of API key + client id + API secret.

    It does not include the request time, so it is as sensitive as the secret itself.
    """
    return hashlib.sha1(
        (api_key.reveal() + client_id + api_secret.reveal()).encode("utf-8"), usedforsecurity=False
    ).hexdigest()


def _check_answer(response: httpx.Response) -> Verdict | None:
    """SALESmanago answers 200 even when it refuses a request, with ``success: false``."""
    try:
        answer = response.json()
    except ValueError:
        return Verdict(Outcome.FAILED, "HTTP 200 without a JSON answer")
    if not isinstance(answer, dict) or "success" not in answer:
        return Verdict(Outcome.FAILED, "HTTP 200 without a success flag")
    if answer["success"] is not True:  # not its message: it may quote the contact's e-mail
        return Verdict(Outcome.REJECTED, f"success=false ({len(response.content)} bytes)")
    return None


@dataclass(frozen=True, slots=True)
class _Credentials:
    base_url: str
    client_id: str
    api_key: Secret
    sha: Secret

    @classmethod
    def of(cls, settings: ManagoSettings) -> _Credentials | None:
        s = settings
        if s.base_url is None or s.client_id is None or s.api_key is None or s.api_secret is None:
            return None
        sha = Secret(signature(s.api_key, s.client_id, s.api_secret))
        return cls(s.base_url, s.client_id, s.api_key, sha)


class ManagoService:
    """Per purchase, upserts the contact then adds the event, authenticated in the JSON body."""

    def __init__(
        self,
        settings: ManagoSettings,
        http: httpx.Client,
        breaker: ServiceBreaker,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._credentials = _Credentials.of(settings)
        self._clock = clock
        sha = self._credentials.sha if self._credentials is not None else None
        self._delivery = Delivery(
            SERVICE,
            http,
            breaker,
            settings.timeouts,
            secrets=[settings.api_key, settings.api_secret, sha],
        )

    @property
    def max_cost_seconds(self) -> float:
        """Two requests, one after the other: the upsert, then the event."""
        return 2 * self._delivery.max_cost_seconds

    def upsert_payload(self, purchase: ManagoPurchase) -> dict[str, object]:
        """The contact upsert's body without the authentication fields: the e-mail alone (no
        consent flags, so an existing contact's consents stay as they are)."""
        return self._owned({"contact": {"email": _email(purchase)}})

    def payload(self, purchase: ManagoPurchase) -> dict[str, object]:
        """The event's body without the authentication fields."""
        event: dict[str, object] = {
            "contactExtEventType": "PURCHASE",
            "date": _millis(purchase.date),
            "externalId": purchase.order_id,
            "value": purchase.value,
            "detail1": purchase.currency,
        }
        products = purchase.products()
        if products:
            event["products"] = products
        if purchase.location is not None:
            event["location"] = purchase.location
        return self._owned({"email": _email(purchase), "contactEvent": event})

    def send_purchase(self, purchase: ManagoPurchase) -> Outcome:
        """Upsert the buyer's contact, then add the event; the event is not sent when the
        upsert was not (its outcome is returned: skipped, failed or rejected)."""
        upsert, event = self.upsert_payload(purchase), self.payload(purchase)
        credentials = self._credentials
        if credentials is None:
            subject = f"order {purchase.order_id}"
            self._delivery.dry_run("upsert", upsert, subject=f"the buyer's contact of {subject}")
            return self._delivery.dry_run("purchase", event, subject=subject)
        outcome = self._post(credentials, "upsert", UPSERT_PATH, upsert)
        if outcome is not Outcome.SENT:
            return outcome
        return self._post(credentials, "purchase", EVENT_PATH, event)

    def _owned(self, body: dict[str, object]) -> dict[str, object]:
        if self._settings.owner is not None:
            body["owner"] = self._settings.owner
        return body

    def _post(
        self, credentials: _Credentials, action: str, path: str, body: dict[str, object]
    ) -> Outcome:
        authentication = {
            "clientId": credentials.client_id,
            "apiKey": credentials.api_key.reveal(),
            "requestTime": round(self._clock() * 1000),
            "sha": credentials.sha.reveal(),
        }
        return self._delivery.post_json(
            action, credentials.base_url + path, {**authentication, **body}, check=_check_answer
        )


def _email(purchase: ManagoPurchase) -> str:
    return purchase.email.strip().lower()


def _millis(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)

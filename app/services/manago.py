"""Manago CRM (SALESmanago API): a purchase becomes an external event on the buyer's contact."""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from app.services.breaker import BreakerSettings, ServiceBreaker
from app.services.delivery import Delivery, Outcome, Verdict
from app.services.env import read_secret, read_text, read_url, require_all_or_none
from app.services.http_client import HttpTimeouts
from app.services.secret import Secret

SERVICE = "manago"
DEFAULT_TIMEOUTS = HttpTimeouts(connect=1.0, read=3.0)
DEFAULT_BREAKER = BreakerSettings()
ENV_PREFIX = "MANAGO"
EVENT_PATH = "/api/contact/addContactExtEvent"
CREDENTIALS = (
    "MANAGO_URL",
    "MANAGO_CLIENT_ID",
    "MANAGO_API_KEY",
    "MANAGO_API_SECRET",
    "MANAGO_OWNER",
)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CURRENCY = re.compile(r"[A-Z]{3}")


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
        if not self.order_id:
            raise ValueError("order_id must not be empty")
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
    if answer["success"] is not True:
        return Verdict(Outcome.REJECTED, f"success=false: {answer.get('message')!r}")
    return None


@dataclass(frozen=True, slots=True)
class _Credentials:
    url: str
    client_id: str
    api_key: Secret
    sha: Secret

    @classmethod
    def of(cls, settings: ManagoSettings) -> _Credentials | None:
        s = settings
        if s.base_url is None or s.client_id is None or s.api_key is None or s.api_secret is None:
            return None
        sha = Secret(signature(s.api_key, s.client_id, s.api_secret))
        return cls(s.base_url + EVENT_PATH, s.client_id, s.api_key, sha)


class ManagoService:
    """Sends one ``addContactExtEvent`` per purchase, authenticated in the JSON body."""

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
        return self._delivery.max_cost_seconds

    def payload(self, purchase: ManagoPurchase) -> dict[str, object]:
        """The request body without the authentication fields."""
        event: dict[str, object] = {
            "contactExtEventType": "PURCHASE",
            "date": _millis(purchase.date),
            "externalId": purchase.order_id,
            "products": ",".join(purchase.product_ids),
            "value": purchase.value,
            "detail1": purchase.currency,
        }
        if purchase.location is not None:
            event["location"] = purchase.location
        body: dict[str, object] = {"email": purchase.email.strip().lower(), "contactEvent": event}
        if self._settings.owner is not None:
            body["owner"] = self._settings.owner
        return body

    def send_purchase(self, purchase: ManagoPurchase) -> Outcome:
        body = self.payload(purchase)
        credentials = self._credentials
        if credentials is None:
            return self._delivery.dry_run("purchase", body)
        authentication = {
            "clientId": credentials.client_id,
            "apiKey": credentials.api_key.reveal(),
            "requestTime": round(self._clock() * 1000),
            "sha": credentials.sha.reveal(),
        }
        return self._delivery.post_json(
            "purchase", credentials.url, {**authentication, **body}, check=_check_answer
        )


def _millis(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)

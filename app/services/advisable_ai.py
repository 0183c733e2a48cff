"""Advisable AI: the recommendation engine learns from one JSON signal per user action."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import httpx

from app.services.breaker import BreakerSettings, ServiceBreaker
from app.services.delivery import Delivery, Outcome
from app.services.env import read_secret, read_url, require_all_or_none
from app.services.http_client import HttpTimeouts
from app.services.secret import Secret

SERVICE = "advisable_ai"
DEFAULT_TIMEOUTS = HttpTimeouts(connect=0.5, read=1.0)
DEFAULT_BREAKER = BreakerSettings()
ENV_PREFIX = "ADVISABLE_AI"
MIN_RATING = 1.0
MAX_RATING = 5.0


class SignalType(StrEnum):
    BOOKMARK = "bookmark"
    REMOVE_BOOKMARK = "remove_bookmark"
    RATING = "rating"
    PURCHASE = "purchase"
    VIEW = "view"
    ADD_TO_CART = "add_to_cart"
    REMOVE_FROM_CART = "remove_from_cart"
    SESSION_SWITCH = "session_switch"


@dataclass(frozen=True, slots=True)
class AdvisableAISettings:
    """Live when both the signals endpoint and the API key are set; dry-run when neither is."""

    signals_url: str | None = None
    api_key: Secret | None = None
    timeouts: HttpTimeouts = DEFAULT_TIMEOUTS
    breaker: BreakerSettings = DEFAULT_BREAKER

    def __post_init__(self) -> None:
        if (self.signals_url is None) != (self.api_key is None):
            raise ValueError("signals_url and api_key go together: set both or neither")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> AdvisableAISettings:
        require_all_or_none(environ, ("ADVISABLE_AI_SIGNALS_URL", "ADVISABLE_AI_API_KEY"))
        return cls(
            signals_url=read_url(environ, "ADVISABLE_AI_SIGNALS_URL"),
            api_key=read_secret(environ, "ADVISABLE_AI_API_KEY"),
            timeouts=HttpTimeouts.from_environ(environ, ENV_PREFIX, DEFAULT_TIMEOUTS),
            breaker=BreakerSettings.from_environ(environ, ENV_PREFIX),
        )


@dataclass(frozen=True, slots=True)
class Signal:
    """One user action. Anonymous visitors are known by session id; ``session_switch`` ties
    an anonymous session to the user who just signed in, so it needs both and no item."""

    type: SignalType
    item_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    value: float | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not isinstance(self.type, SignalType):
            raise TypeError(f"type must be a SignalType, got {self.type!r}")
        if not (self.user_id or self.session_id):
            raise ValueError("a signal needs a user_id or a session_id")
        if self.type is SignalType.SESSION_SWITCH:
            if not (self.user_id and self.session_id) or self.item_id is not None:
                raise ValueError("session_switch needs user_id and session_id, and no item_id")
        elif not self.item_id:
            raise ValueError(f"a {self.type} signal needs an item_id")
        if self.type is SignalType.RATING and (
            self.value is None or not MIN_RATING <= self.value <= MAX_RATING
        ):
            raise ValueError(
                f"a rating needs a value from {MIN_RATING:g} to {MAX_RATING:g}, got {self.value!r}"
            )
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"value must be finite, got {self.value!r}")
        if self.timestamp.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")

    @property
    def task_name(self) -> str:
        return f"{SERVICE}.{self.type.value}"

    @property
    def subject(self) -> str:
        """What a log line may say of it: the item and the customer id (the anonymous visitor id
        is a digest of a session cookie, left out)."""
        parts = [f"item {self.item_id}" if self.item_id else "",
                 f"customer {self.user_id}" if self.user_id else ""]
        return ", ".join(part for part in parts if part) or "an anonymous visitor"

    def to_json(self) -> dict[str, object]:
        fields = {
            "type": self.type.value,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "item_id": self.item_id,
            "value": self.value,
        }
        data: dict[str, object] = {key: value for key, value in fields.items() if value is not None}
        data["timestamp"] = self.timestamp.astimezone(UTC).isoformat(timespec="milliseconds")
        return data


class AdvisableAIService:
    """Posts each signal on its own, authenticated with a bearer key in a header."""

    def __init__(
        self, settings: AdvisableAISettings, http: httpx.Client, breaker: ServiceBreaker
    ) -> None:
        self._settings = settings
        self._delivery = Delivery(
            SERVICE, http, breaker, settings.timeouts, secrets=[settings.api_key]
        )

    @property
    def max_cost_seconds(self) -> float:
        return self._delivery.max_cost_seconds

    def send_signal(self, signal: Signal) -> Outcome:
        body = signal.to_json()
        url, key = self._settings.signals_url, self._settings.api_key
        if url is None or key is None:
            return self._delivery.dry_run(signal.type.value, body, subject=signal.subject)
        return self._delivery.post_json(
            signal.type.value, url, body, headers={"Authorization": f"Bearer {key.reveal()}"}
        )

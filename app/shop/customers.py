"""Customers who registered with an e-mail address and, optionally, a phone number."""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass, field

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9][0-9 ().-]{5,24}")
MAX_NAME_CHARS = 100


class AlreadyRegistered(ValueError):
    """The e-mail address belongs to a customer already."""


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    email: str = field(repr=False)
    phone: str | None = field(default=None, repr=False)
    name: str = field(default="", repr=False)


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise ValueError("email must be an e-mail address such as jane@example.com")
    return email


def normalise_phone(raw: str | None) -> str | None:
    """As typed (trimmed), or None when blank; Meta's own normalisation happens when sent."""
    phone = (raw or "").strip()
    if not phone:
        return None
    if not _PHONE.fullmatch(phone) or not 7 <= sum(c.isdigit() for c in phone) <= 15:
        raise ValueError("phone must be a phone number of 7 to 15 digits, such as +48 601 234 567")
    return phone


class Customers:
    def __init__(self) -> None:
        self._by_id: dict[str, Customer] = {}
        self._by_email: dict[str, Customer] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def register(self, email: str, phone: str | None = None, name: str = "") -> Customer:
        """Raises ValueError for an invalid address or phone, AlreadyRegistered for a taken address."""
        email, phone, name = normalise_email(email), normalise_phone(phone), name.strip()
        if len(name) > MAX_NAME_CHARS:
            raise ValueError(f"name must be at most {MAX_NAME_CHARS} characters")
        with self._lock:
            if email in self._by_email:
                raise AlreadyRegistered("this e-mail address is registered already")
            customer = Customer(f"c{next(self._ids)}", email, phone, name)
            self._by_id[customer.id] = customer
            self._by_email[email] = customer
            return customer

    def get(self, customer_id: str | None) -> Customer | None:
        return self._by_id.get(customer_id) if customer_id is not None else None

"""Meta's normalisation of customer information, then SHA-256 as the Conversions API requires.

Meta matches our server events to its users by comparing hashes, so a value normalised
differently from Meta's rules (customer-information-parameters) silently fails to match:

* ``em``: trim leading and trailing spaces, lowercase.
* ``ph``: digits only, with the country code, no leading zeros (so ``+`` and an ``00``
  international prefix go too). A number written without ``+``/``00`` is national: its
  trunk zeros are dropped and ``default_country_code`` (when configured) is put in front.
* ``external_id``: hashing recommended; trimmed and lowercased first so that the same id
  hashes the same way here and in the browser pixel.

A value that cannot be valid (no ``@``, too few digits) yields None: it is left out of the
event instead of being sent as a hash that can never match.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

E164_MIN_DIGITS = 7
E164_MAX_DIGITS = 15
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def sha256_hex(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def normalise_email(raw: str) -> str | None:
    email = raw.strip().lower()
    return email if _EMAIL.fullmatch(email) else None


def normalise_phone(raw: str, default_country_code: str | None = None) -> str | None:
    text = raw.strip()
    # Any script's decimal digits count (a user may type ٦٠١), written as ASCII digits.
    digits = "".join(str(unicodedata.decimal(char)) for char in text if char.isdecimal())
    international = text.startswith("+") or digits.startswith("00")
    digits = digits.lstrip("0")
    if not international and default_country_code is not None:
        digits = default_country_code + digits
    return digits if E164_MIN_DIGITS <= len(digits) <= E164_MAX_DIGITS else None


def normalise_external_id(raw: str) -> str | None:
    external_id = raw.strip().lower()
    return external_id or None


def hash_email(raw: str) -> str | None:
    email = normalise_email(raw)
    return sha256_hex(email) if email is not None else None


def hash_phone(raw: str, default_country_code: str | None = None) -> str | None:
    phone = normalise_phone(raw, default_country_code)
    return sha256_hex(phone) if phone is not None else None


def hash_external_id(raw: str) -> str | None:
    external_id = normalise_external_id(raw)
    return sha256_hex(external_id) if external_id is not None else None

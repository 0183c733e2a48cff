"""Meta's normalisation of customer information, then SHA-256 as the Conversions API requires.

Meta matches our server events to its users by comparing hashes, so a value normalised
differently from Meta's rules (customer-information-parameters) silently fails to match:

* ``em``: trim leading and trailing spaces, lowercase.
* ``ph``: the number in E.164 (country code, national number, no trunk prefix) as digits
  only, without ``+``. Parsing is left to ``phonenumbers`` (Google's libphonenumber): a
  number with ``+`` or ``00`` is international; one without is read as a number of the
  region of ``default_country_code`` (``META_DEFAULT_PHONE_COUNTRY_CODE``), which also
  recognises a number typed with its country code but without ``+`` (``48601234567``) and
  drops a trunk prefix written in brackets (``+44 (0)20 ...``). Only where libphonenumber
  cannot parse the text at all (no ``+``, no default country code) is the old rule used:
  digits only, leading zeros dropped, the default country code put in front; it is also
  tried on a number libphonenumber parses but finds invalid, and kept if that is valid.
* ``external_id``: hashing recommended; trimmed and lowercased first so that the same id
  hashes the same way here and in the browser pixel.

A value that cannot be valid (no ``@``, a number of impossible length) yields None: it is left
out of the event instead of being sent as a hash that can never match.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import phonenumbers

E164_MIN_DIGITS = 7
E164_MAX_DIGITS = 15
MAX_PHONE_CHARS = 64
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_UNKNOWN_REGION = "ZZ"


def sha256_hex(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def normalise_email(raw: str) -> str | None:
    email = raw.strip().lower()
    return email if _EMAIL.fullmatch(email) else None


def normalise_phone(raw: str, default_country_code: str | None = None) -> str | None:
    """E.164 digits without ``+`` (``48601234567``), or None for a number that cannot be one."""
    text = raw.strip()
    if not text or len(text) > MAX_PHONE_CHARS:
        return None
    # Any script's decimal digits count (a user may type ٦٠١); libphonenumber reads them too.
    ascii_text = "".join(
        str(unicodedata.decimal(char)) if char.isdecimal() else char for char in text
    )
    if ascii_text.lstrip().startswith("00"):
        ascii_text = "+" + ascii_text.lstrip()[2:]  # the international call prefix most use
    try:
        number = phonenumbers.parse(ascii_text, _region_of(default_country_code))
    except phonenumbers.NumberParseException:
        return _digits_rule(ascii_text, default_country_code)
    if phonenumbers.is_valid_number(number):
        return _e164_digits(number)
    # Not a number of its region, such as a Polish one typed with a trunk zero that Poland no
    # longer has (0601 234 567): the old rule's reading is kept only if libphonenumber finds
    # that one valid; otherwise a number of possible length is taken as parsed.
    retry = _digits_rule(ascii_text, default_country_code)
    if retry is not None and _is_valid_e164(retry):
        return retry
    return _e164_digits(number) if phonenumbers.is_possible_number(number) else None


def _e164_digits(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).removeprefix("+")


def _is_valid_e164(digits: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse("+" + digits, None))
    except phonenumbers.NumberParseException:
        return False


def _region_of(country_code: str | None) -> str | None:
    """The main region of a calling code (48: PL, 1: US); None when there is none."""
    if country_code is None:
        return None
    region = phonenumbers.region_code_for_country_code(int(country_code))
    return None if region == _UNKNOWN_REGION else region


def _digits_rule(text: str, default_country_code: str | None) -> str | None:
    """The rule from before libphonenumber, for what it cannot parse: digits only, no leading
    zeros, and the default country code in front of a number written without ``+``."""
    digits = "".join(char for char in text if char.isdigit())
    international = text.startswith("+")
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

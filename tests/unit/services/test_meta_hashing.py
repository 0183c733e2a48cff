"""Meta's normalisation rules, checked against the examples in Meta's own documentation and
against the normaliser of Meta's own SDK (``facebook-business``) on a table of spellings."""

from __future__ import annotations

import re

import pytest
from facebook_business.adobjects.serverside.normalize import Normalize

from app.services.meta_hashing import (
    hash_email,
    hash_external_id,
    hash_phone,
    normalise_email,
    normalise_external_id,
    normalise_phone,
    sha256_hex,
)


def test_email_matches_metas_documented_example() -> None:
    assert normalise_email("  John_Smith@gmail.com ") == "john_smith@gmail.com"
    assert hash_email("John_Smith@gmail.com") == (
        "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
    )


def test_phone_matches_metas_documented_example() -> None:
    assert normalise_phone("(650)555-1212", default_country_code="1") == "16505551212"
    assert hash_phone("(650)555-1212", default_country_code="1") == (
        "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
    )


@pytest.mark.parametrize(
    ("raw", "default", "normalised"),
    [
        ("+44 844 412 4653", None, "448444124653"),
        ("0044 844 412 4653", None, "448444124653"),
        ("+44 844 412 4653", "48", "448444124653"),  # international: the default is not used
        ("0601 234 567", "48", "48601234567"),  # national: trunk zero dropped, code added
        ("48 601-234-567", None, "48601234567"),  # no default: taken as including the code
        ("+٤٨ ٦٠١ ٢٣٤ ٥٦٧", None, "48601234567"),  # digits of any script, written in ASCII
    ],
)
def test_phone_keeps_digits_with_the_country_code_and_no_leading_zeros(
    raw: str, default: str | None, normalised: str
) -> None:
    assert normalise_phone(raw, default) == normalised


@pytest.mark.parametrize("raw", ["", "12345", "+1 234 567 890 123 456 7", "call me"])
def test_a_phone_that_cannot_be_a_number_is_left_out(raw: str) -> None:
    assert hash_phone(raw) is None


@pytest.mark.parametrize("raw", ["", "   ", "no-at-sign", "a@b", "a b@c.example"])
def test_an_email_that_cannot_be_an_address_is_left_out(raw: str) -> None:
    assert hash_email(raw) is None


def test_external_id_is_trimmed_and_lowercased_before_hashing() -> None:
    assert normalise_external_id("  Customer-42 ") == "customer-42"
    assert hash_external_id("  Customer-42 ") == hash_external_id("customer-42")
    assert hash_external_id("   ") is None


ODD_PHONES = [
    ("", None),
    ("+", None),
    ("00", None),
    ("0000000", None),
    ("+0 (0) 00-12", None),
    ("١٢٣٤٥٦٧٨", None),  # 8 digits: no French number (default 33) has so few
    ("+48 601 234 567 ext. 9", "48601234567"),  # the extension is not part of the number
    ("x" * 50, None),
]
"""(typed, what the normaliser makes of it with default country code 33): exactly, never "None or
anything well-formed"."""


@pytest.mark.parametrize(("raw", "normalised"), ODD_PHONES)
def test_odd_phones_normalise_to_exactly_this(raw: str, normalised: str | None) -> None:
    phone = normalise_phone(raw, default_country_code="33")
    assert phone == normalised
    if phone is not None:
        assert re.fullmatch(r"[1-9][0-9]{6,14}", phone)  # ASCII digits, no leading zero
        assert hash_phone(raw, default_country_code="33") == sha256_hex(phone)
    else:
        assert hash_phone(raw, default_country_code="33") is None


@pytest.mark.parametrize("raw", ["A@B.CO", " x.y+tag@Sub.Example.org\t", "ÉLODIE@exemple.fr"])
def test_email_normalisation_is_idempotent_and_hashes_are_sha256_hex(raw: str) -> None:
    email = normalise_email(raw)
    assert email is not None
    assert normalise_email(email) == email
    assert re.fullmatch(r"[0-9a-f]{64}", hash_email(raw) or "")


# --- libphonenumber: the spellings ---


@pytest.mark.parametrize(
    ("raw", "default", "e164"),
    [
        ("48601234567", "48", "48601234567"),  # typed with the country code but without +
        ("48 601 234 567", "48", "48601234567"),
        ("+44 (0)20 7946 0958", None, "442079460958"),  # the bracketed trunk zero goes
        ("+44 (0)20 7946 0958", "48", "442079460958"),
        ("020 7946 0958", "44", "442079460958"),  # national, with its trunk zero
        ("06 12 34 56 78", "33", "33612345678"),
        ("601 234 567", "48", "48601234567"),
        ("(650) 555-1212", "1", "16505551212"),
        ("+1 650-555-1212", "48", "16505551212"),
    ],
)
def test_phone_is_e164_as_libphonenumber_reads_it(raw: str, default: str | None, e164: str) -> None:
    assert normalise_phone(raw, default) == e164


def test_a_country_code_without_a_region_falls_back_to_the_digits_rule() -> None:
    # 999 is no calling code: libphonenumber cannot parse a national number for it.
    assert normalise_phone("601 234 567", "999") == "999601234567"


# --- against Meta's own SDK (facebook-business, a test-only dependency) ---

EMAIL_SPELLINGS = [
    "  John_Smith@gmail.com ",
    "JANE.DOE@EXAMPLE.COM",
    "\tx.y+tag@Sub.Example.org\n",
    "ÉLODIE@exemple.fr",
    "a@b.co",
]


@pytest.mark.parametrize("raw", EMAIL_SPELLINGS)
def test_email_hash_is_the_sdks(raw: str) -> None:
    assert hash_email(raw) == Normalize.normalize_field("em", raw)


@pytest.mark.parametrize("raw", [" Customer-42 ", "c1", "ABC-def_9", "  émile  "])
def test_external_id_hash_is_the_sdks_generic_normalisation(raw: str) -> None:
    # The SDK has no rule of its own for external_id: trimmed, lowercased, hashed.
    assert hash_external_id(raw) == Normalize.normalize_field("external_id", raw)


@pytest.mark.parametrize(
    ("raw", "default"),
    [
        ("+1 (650) 555-1212", None),
        ("+48 601 234 567", None),
        ("+48-601-234-567", "48"),
        ("0048 601 234 567", None),
        ("0044 20 7946 0958", "48"),
        ("+33 6 12 34 56 78", "1"),
    ],
)
def test_international_spellings_hash_as_the_sdk_hashes_them(raw: str, default: str | None) -> None:
    """Written internationally without a trunk prefix, the SDK's rule and libphonenumber agree."""
    assert hash_phone(raw, default) == Normalize.normalize_field("ph", raw)


@pytest.mark.parametrize(
    ("raw", "default"),
    [
        ("48601234567", "48"),
        ("601 234 567", "48"),
        ("+44 (0)20 7946 0958", None),
        ("020 7946 0958", "44"),
        ("(650) 555-1212", "1"),
        ("٦٠١ ٢٣٤ ٥٦٧", "48"),
    ],
)
def test_other_spellings_hash_as_the_sdk_hashes_their_e164_form(raw: str, default: str | None) -> None:
    """The SDK expects the country code already there (and keeps a trunk zero it is given):
    what we hash is what it hashes for the same number written in E.164."""
    e164 = normalise_phone(raw, default)
    assert e164 is not None
    assert hash_phone(raw, default) == Normalize.normalize_field("ph", "+" + e164)


def test_the_sdk_would_keep_a_bracketed_trunk_zero_which_is_why_libphonenumber_parses() -> None:
    raw = "+44 (0)20 7946 0958"
    assert Normalize.normalize_field("ph", raw) == sha256_hex("4402079460958")
    assert hash_phone(raw) == sha256_hex("442079460958")

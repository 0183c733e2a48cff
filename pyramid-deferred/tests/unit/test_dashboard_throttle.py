"""The dashboard's throttle windows and login cookies, with time passed in."""

from __future__ import annotations

import pytest

from pyramid_deferred.dashboard.access import CLOCK_SKEW_SECONDS, LoginCookies
from pyramid_deferred.dashboard.throttle import Throttle

TOKEN = "Zq4v-8rT_kd2LwP9xHn3mYc6"


def test_a_key_is_throttled_after_its_limit_until_its_window_ends():
    throttle = Throttle(limit=3, window_seconds=60, max_keys=10)

    crossed = [throttle.failed("a", now) for now in (100.0, 110.0, 120.0)]

    assert crossed == [False, False, True], "True once: the failure that throttles"
    assert throttle.retry_after("a", 120.0) == 40.0
    assert throttle.retry_after("a", 159.9) == pytest.approx(0.1)
    assert throttle.retry_after("a", 160.0) is None, "the window opened at the first failure"
    assert throttle.retry_after("b", 120.0) is None, "another key is not throttled"


def test_failures_below_the_limit_never_throttle_and_a_new_window_starts_afresh():
    throttle = Throttle(limit=3, window_seconds=60, max_keys=10)
    throttle.failed("a", 0.0)
    throttle.failed("a", 1.0)

    assert throttle.retry_after("a", 2.0) is None
    assert throttle.failed("a", 61.0) is False, "a new window: this is its first failure"
    assert throttle.failed("a", 62.0) is False
    assert throttle.retry_after("a", 62.0) is None
    assert throttle.failed("a", 63.0) is True


def test_each_window_is_reported_once():
    throttle = Throttle(limit=2, window_seconds=10, max_keys=10)
    reported = [throttle.failed("a", now) for now in (0, 1, 2, 3, 10, 11, 12)]
    assert reported == [False, True, False, False, False, True, False]


def test_memory_is_bounded_expired_windows_go_first_then_the_oldest():
    throttle = Throttle(limit=2, window_seconds=10, max_keys=3)
    throttle.failed("old", 0.0)
    throttle.failed("a", 5.0)
    throttle.failed("b", 6.0)

    throttle.failed("c", 11.0)  # "old" has expired: it makes room
    assert len(throttle) == 3
    throttle.failed("c", 11.5)
    assert throttle.retry_after("c", 12.0) is not None

    throttle.failed("d", 12.0)  # none expired: the oldest window ("a") goes
    assert len(throttle) == 3 and throttle.retry_after("c", 12.0) is not None


def test_a_cookie_is_valid_until_its_max_age_and_never_holds_the_token():
    cookies = LoginCookies(TOKEN, max_age_seconds=3600)
    value = cookies.issue(1_000_000.0)

    assert TOKEN not in value and value.startswith("v1.1000000.")
    assert cookies.valid(value, 1_000_000.0)
    assert cookies.valid(value, 1_003_599.9)
    assert not cookies.valid(value, 1_003_600.0)
    assert not cookies.valid(value, 1_000_000.0 - CLOCK_SKEW_SECONDS - 1), "issued in the future"
    assert cookies.issue(1_000_000.0) != value, "each login its own nonce"


@pytest.mark.parametrize("tamper", [
    lambda v: v.replace("v1.1000000.", "v1.1999999.", 1),  # a later issue time: a longer life
    lambda v: v[:12] + ("0" if v[12] != "0" else "1") + v[13:],  # another nonce
    lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"),  # another HMAC
    lambda v: v.upper(),
    lambda v: v + ".x",
    lambda v: "",
    lambda v: "v1.1000000." + "0" * 32 + "." + "0" * 64,
], ids=["issue-time", "nonce", "mac", "case", "suffix", "empty", "zeros"])
def test_a_tampered_cookie_is_refused(tamper):
    cookies = LoginCookies(TOKEN, max_age_seconds=3600)
    value = cookies.issue(1_000_000.0)
    assert not cookies.valid(tamper(value), 1_000_001.0)


def test_a_new_token_ends_every_login():
    value = LoginCookies(TOKEN, max_age_seconds=3600).issue(0.0)
    assert not LoginCookies(TOKEN + "x", max_age_seconds=3600).valid(value, 1.0)
    assert TOKEN not in repr(LoginCookies(TOKEN, max_age_seconds=3600))

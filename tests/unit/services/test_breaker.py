"""The breaker's state machine, driven from outside the guarded call."""

from __future__ import annotations

import threading
import time

import pytest

from app.services.breaker import BreakerSettings, Permit, ServiceBreaker
from app.services.breaker_storage import LocalBreakerStorage

RESET = 0.05
TTL = 5.0


def breaker(fail_max: int = 2) -> ServiceBreaker:
    settings = BreakerSettings(fail_max=fail_max, reset_timeout=RESET)
    return ServiceBreaker("svc", settings, LocalBreakerStorage())


def permit(b: ServiceBreaker) -> Permit:
    granted = b.try_acquire(TTL)
    assert granted is not None
    return granted


def trip(b: ServiceBreaker) -> None:
    while b.current_state == "closed":
        permit(b).record_failure()


def test_a_closed_breaker_permits_every_call() -> None:
    b = breaker()

    permits = [b.try_acquire(TTL) for _ in range(5)]

    assert all(p is not None and not p.is_probe for p in permits)


def test_fail_max_consecutive_failures_open_it() -> None:
    b = breaker(fail_max=3)
    for _ in range(2):
        permit(b).record_failure()
    assert b.current_state == "closed"

    permit(b).record_failure()

    assert b.current_state == "open"
    assert b.try_acquire(TTL) is None


def test_a_success_in_between_resets_the_streak() -> None:
    b = breaker(fail_max=2)

    for outcome in ("failure", "success", "failure"):
        p = permit(b)
        p.record_failure() if outcome == "failure" else p.record_success()

    assert b.current_state == "closed"


def test_after_the_reset_timeout_exactly_one_probe_is_permitted() -> None:
    b = breaker()
    trip(b)
    time.sleep(RESET + 0.02)

    probe = b.try_acquire(TTL)
    others = [b.try_acquire(TTL) for _ in range(3)]

    assert probe is not None and probe.is_probe
    assert others == [None, None, None]
    assert b.current_state == "half-open"


def test_a_successful_probe_closes_it() -> None:
    b = breaker()
    trip(b)
    time.sleep(RESET + 0.02)

    permit(b).record_success()

    assert b.current_state == "closed"
    assert permit(b).is_probe is False


def test_a_failed_probe_opens_it_for_another_reset_timeout() -> None:
    b = breaker()
    trip(b)
    time.sleep(RESET + 0.02)

    permit(b).record_failure()

    assert b.current_state == "open"
    assert b.try_acquire(TTL) is None


def test_a_released_probe_lets_the_next_call_probe() -> None:
    b = breaker()
    trip(b)
    time.sleep(RESET + 0.02)

    permit(b).release()  # our own bug: no verdict on the service

    assert b.current_state == "half-open"
    assert permit(b).is_probe


def test_a_probe_that_never_reports_frees_its_slot_after_its_ttl() -> None:
    b = breaker()
    trip(b)
    time.sleep(RESET + 0.02)
    assert b.try_acquire(probe_ttl_seconds=0.05) is not None

    time.sleep(0.07)

    assert b.try_acquire(TTL) is not None


def test_late_outcomes_of_ordinary_calls_do_not_decide_a_half_open_breaker() -> None:
    b = breaker()
    late = [permit(b), permit(b)]
    trip(b)
    time.sleep(RESET + 0.02)
    probe = permit(b)

    late[0].record_failure()
    late[1].record_success()

    assert b.current_state == "half-open"
    probe.record_success()
    assert b.current_state == "closed"


def test_an_outcome_is_recorded_once() -> None:
    b = breaker(fail_max=2)
    p = permit(b)

    p.record_failure()
    p.record_failure()

    assert b.current_state == "closed"


def test_concurrent_callers_get_one_probe_between_them() -> None:
    b = breaker()
    trip(b)
    time.sleep(RESET + 0.02)
    start = threading.Barrier(16)
    granted: list[Permit | None] = []

    def contend() -> None:
        start.wait()
        granted.append(b.try_acquire(TTL))

    threads = [threading.Thread(target=contend) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(p is not None for p in granted) == 1


@pytest.mark.parametrize(
    ("fail_max", "reset_timeout"), [(0, 1.0), (1, 0.0), (1, -1.0)], ids=["fail_max", "zero", "neg"]
)
def test_settings_out_of_range_are_refused(fail_max: int, reset_timeout: float) -> None:
    with pytest.raises(ValueError):
        BreakerSettings(fail_max=fail_max, reset_timeout=reset_timeout)


def test_settings_come_from_prefixed_environment_variables() -> None:
    environ = {"META_BREAKER_FAIL_MAX": "7", "META_BREAKER_RESET_TIMEOUT": "12.5"}

    assert BreakerSettings.from_environ(environ, "META") == BreakerSettings(7, 12.5)
    assert BreakerSettings.from_environ({}, "META") == BreakerSettings()


def test_a_bad_breaker_setting_names_the_variable() -> None:
    with pytest.raises(ValueError, match=r"MATOMO_BREAKER_FAIL_MAX='0' is out of range"):
        BreakerSettings.from_environ({"MATOMO_BREAKER_FAIL_MAX": "0"}, "MATOMO")

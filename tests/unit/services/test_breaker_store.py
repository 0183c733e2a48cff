from __future__ import annotations

import pytest

from app.services.breaker import BreakerSettings
from app.services.breaker_store import BreakerStore, BreakerStoreSettings


def test_without_a_redis_url_breakers_live_in_this_process() -> None:
    store = BreakerStore.from_environ({})

    assert not store.shared
    assert store.breaker("meta", BreakerSettings()).overhead_seconds == 0.0


def test_with_a_redis_url_breakers_are_shared_and_declare_their_redis_cost() -> None:
    environ = {"CIRCUIT_BREAKER_REDIS_URL": "redis://127.0.0.1:1/0"}
    environ["CIRCUIT_BREAKER_REDIS_TIMEOUT"] = "0.02"
    store = BreakerStore.from_environ(environ)

    assert store.shared
    assert 0 < store.breaker("meta", BreakerSettings()).overhead_seconds < 1
    store.close()


def test_the_redis_url_is_a_secret_and_a_bad_one_is_refused_without_echoing_it() -> None:
    settings = BreakerStoreSettings.from_environ(
        {"CIRCUIT_BREAKER_REDIS_URL": "redis://:pa55word@redis.internal:6379/0"}
    )
    assert "pa55word" not in repr(settings)

    with pytest.raises(ValueError) as error:
        BreakerStoreSettings.from_environ({"CIRCUIT_BREAKER_REDIS_URL": "http://:pa55word@x"})
    assert "CIRCUIT_BREAKER_REDIS_URL" in str(error.value) and "pa55word" not in str(error.value)

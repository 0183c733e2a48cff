"""The idempotency keys against a real redis-server (started here for the module, stopped by pid):
what keeps each durable task to one run, whichever process holds it, in which order."""
# The fixture is imported from tests/servers/durable_parts.py; a test's argument of the same name is
# pytest's injection, not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from pyramid_deferred.celery import RedisClaims, redis_client
from pyramid_deferred.durable import Claim

from tests.servers.durable_parts import broker_url  # noqa: F401  (fixture)
from tests.servers.servers import free_port, poll

pytestmark = pytest.mark.servers

LEASE = 60.0
SHORT_LEASE = 0.2


@pytest.fixture
def claims(broker_url: str) -> Iterator[RedisClaims]:
    client = redis_client(broker_url, 5.0)
    yield RedisClaims(client, done_ttl_seconds=3600)
    client.close()


@pytest.fixture
def key() -> str:
    return f"rid-{secrets.token_hex(4)}:0a1b2c3d:meta.purchase:0"


def test_a_free_key_is_claimed_and_a_second_claim_finds_it_held(claims, key):
    assert claims.claim(key, LEASE) is Claim.CLAIMED
    assert claims.claim(key, LEASE) is Claim.HELD
    assert 0 < claims.held_for(key) <= LEASE


def test_a_key_that_ran_is_done_for_every_later_claim(claims, key):
    assert claims.claim(key, LEASE) is Claim.CLAIMED
    claims.done(key)
    assert claims.claim(key, LEASE) is Claim.DONE
    assert claims.claim(key, LEASE) is Claim.DONE
    assert 3500 < claims.redis.ttl(claims.prefix + key) <= 3600  # remembered idempotency_ttl_seconds


def test_a_released_key_may_be_claimed_again_but_a_done_one_is_not_released(claims, key):
    assert claims.claim(key, LEASE) is Claim.CLAIMED
    claims.release(key)
    assert claims.claim(key, LEASE) is Claim.CLAIMED
    claims.done(key)
    claims.release(key)  # a failed copy's release must not undo a run that finished
    assert claims.claim(key, LEASE) is Claim.DONE


def test_a_key_whose_lease_expired_is_claimable_again(claims, key):
    """Its holder died mid-run: once the lease is over, another run takes it."""
    assert claims.claim(key, SHORT_LEASE) is Claim.CLAIMED
    assert claims.claim(key, LEASE) is Claim.HELD
    assert poll(lambda: claims.claim(key, LEASE) is Claim.CLAIMED, timeout=10, interval=0.05)
    assert claims.claim(key, LEASE) is Claim.HELD  # the new holder's lease, not the old one's


def test_without_redis_a_claim_answers_unknown_and_the_task_runs_anyway():
    claims = RedisClaims(redis_client(f"redis://127.0.0.1:{free_port()}/0", 0.5), done_ttl_seconds=60)
    assert claims.claim("rid:0a1b2c3d:meta.purchase:0", LEASE) is Claim.UNKNOWN

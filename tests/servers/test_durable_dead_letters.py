"""A purchase carrying a buyer's e-mail and phone that fails until it is a dead letter, with the real
parts: the shop under waitress, its Celery worker, a redis-server (the broker), Meta's stub
answering 500 until the test says otherwise. Neither the e-mail nor the phone appears in any
output of the web and worker processes or of the dead-letter command, nor in clear in any Redis
key of any type (kombu's envelopes decoded); replayed from the store, the purchase is delivered
once.
"""
# The fixtures are imported from tests/servers/durable_parts.py (shared with the other durable
# modules); a test's argument of the same name is pytest's injection, not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pyramid_deferred.celery import redis_client
from pyramid_deferred.durable import MessageCodec, SpilledTask
from pyramid_deferred.durable.dead_letters import DeadLetter, DeadLetterStore
from pytest_httpserver import HTTPServer
from redis import Redis

from app.shop.orders import ACCEPTED_CARD
from tests.servers.durable_parts import (  # noqa: F401  (fixtures)
    DELIVERY_TIMEOUT,
    DUPLICATE_WINDOW,
    KEYS_ENV,
    SIGNING_KEY,
    MetaStub,
    Worker,
    broker_url,
    every_value,
    meta,
    meta_env,
    publish,
    running_worker,
    stub_server,
)
from tests.servers.servers import WAITRESS, WORKTREE, RunningServer, poll, running_server, server_env

pytestmark = pytest.mark.servers

EMAIL = "ewa.dead-letter@example.com"
PHONE = "+48 605 111 222"
PERSONAL = (EMAIL, EMAIL.lower(), EMAIL.upper(), PHONE, "605 111 222", "605111222", "48605111222")
"""The e-mail and the phone as typed, and the spellings a normalisation would give them."""
COMMAND = WORKTREE / ".venv" / "bin" / "pyramid-deferred-dead-letters"
DEAD_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def worker(
    broker_url: str, stub_server: HTTPServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    with running_worker(broker_url, tmp_path_factory.mktemp("dead-letters"), {
        **meta_env(stub_server),
        "APP_DEFERRED_TASK_SPILL_BACKOFF_SECONDS": "0.1", "APP_DEFERRED_TASK_SPILL_MAX_RETRIES": "2",
    }) as running:
        yield running


@pytest.fixture
def web(worker: Worker, stub_server: HTTPServer, tmp_path: Path) -> Iterator[RunningServer]:
    """The shop under waitress, spill-over on, Meta live against the stub (the others in dry-run)."""
    spec = WAITRESS.__class__("waitress-dead-letters", WAITRESS.argv, concurrency=4, family="waitress",
                              env={"APP_DEFERRED_TASK_BROKER_URL": worker.broker_url, **KEYS_ENV,
                                   **meta_env(stub_server)})
    (tmp_path / "markers").mkdir()
    with running_server(spec, tmp_path) as server:
        yield server


def command(broker_url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``pyramid-deferred-dead-letters`` as an operator runs it, with the deployment's variables."""
    env = server_env(Path.cwd(), {"APP_DEFERRED_TASK_BROKER_URL": broker_url, **KEYS_ENV})
    return subprocess.run([str(COMMAND), *argv], env=env, capture_output=True, text=True, timeout=60)


def place_order(server: RunningServer) -> str:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10,
                      headers={"User-Agent": "Mozilla/5.0 (dead-letter test)"}) as client:
        client.post("/api/cart/items", json={"product_id": "espresso-250", "quantity": 1}).raise_for_status()
        response = client.post("/api/checkout", json={"email": EMAIL, "phone": PHONE, "card": ACCEPTED_CARD})
        response.raise_for_status()
        order: str = response.json()["order"]
        return order


def personal_data_in_redis(redis: Redis) -> list[tuple[bytes, bytes]]:
    return [(key, value[:200]) for key, value in every_value(redis)
            if any(text.encode() in value for text in PERSONAL)]


def personal_data_in_files(*directories: Path) -> list[str]:
    found = []
    for directory in directories:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            text = path.read_text(errors="replace")
            found += [f"{path.name}: {text_}" for text_ in PERSONAL if text_ in text]
    return found


def dead_purchase(store: DeadLetterStore) -> DeadLetter | None:
    return next((letter for letter in store.all() if letter.field("name") == "meta.purchase"), None)


def test_the_redis_scan_reads_kombu_s_envelopes(broker_url: str):
    """The scan below must be able to fail: a payload in clear in a queue nobody consumes is found,
    though kombu wraps the message in base64."""
    redis = redis_client(broker_url, 5.0)
    clear = MessageCodec([SIGNING_KEY]).seal(SpilledTask(
        key="scan:0a1b2c3d:meta.purchase:0", request_id="scan", name="meta.purchase",
        function="app.durable_tasks:meta_event", payload=f'[[{{"email": "{EMAIL}"}}],{{}}]', reason="failed",
    ))
    publish(broker_url, clear, task_id="scan-control", queue="scan-control")
    try:
        assert personal_data_in_redis(redis), "the scan did not see a payload in clear"
    finally:
        redis.delete("scan-control")
    redis.close()


def test_a_purchase_that_fails_until_it_is_a_dead_letter_leaks_no_personal_data_and_replays_once(
    worker: Worker, web: RunningServer, meta: MetaStub, broker_url: str
):
    redis = redis_client(broker_url, 5.0)
    store = DeadLetterStore(redis, ttl_seconds=60)
    meta.status = 500
    order = place_order(web)

    in_redis: list[tuple[bytes, bytes]] = []

    def dead() -> DeadLetter | None:
        in_redis.extend(personal_data_in_redis(redis))  # at every step: queued, held, retried, dead
        return dead_purchase(store)

    letter = poll(dead, timeout=DEAD_TIMEOUT, interval=0.1)
    assert letter is not None, worker.log()[-4000:]
    assert meta.attempts(order) >= 2 and meta.delivered(order) == []  # the web process's, the worker's
    assert in_redis == []
    assert letter.message["encrypted"] is True

    [line] = [line for line in worker.log().splitlines() if "DEAD LETTER" in line and letter.key in line]
    assert "durable task meta.purchase" in line and "function app.durable_tasks:meta_event" in line
    assert f"replay with `pyramid-deferred-dead-letters replay {letter.key}`" in line
    listed, shown = command(broker_url, "list"), command(broker_url, "show", letter.key)
    assert listed.returncode == 0 and letter.key in listed.stdout and "meta.purchase" in listed.stdout
    assert shown.returncode == 0 and "encrypted (not shown)" in shown.stdout

    meta.status = 200  # the service is back: replay it from the store
    replayed = command(broker_url, "replay", letter.key)
    assert replayed.returncode == 0 and f"replayed {letter.key}" in replayed.stdout, replayed.stderr
    assert poll(lambda: meta.delivered(order), timeout=DELIVERY_TIMEOUT), worker.log()[-4000:]
    time.sleep(DUPLICATE_WINDOW)
    assert len(meta.delivered(order)) == 1
    assert store.get(letter.key) is None and "0 dead letter(s)" in command(broker_url, "list").stdout
    again = command(broker_url, "replay", letter.key)
    assert again.returncode == 1 and f"no dead letter {letter.key}" in again.stderr

    assert personal_data_in_redis(redis) == []
    outputs = [listed.stdout, listed.stderr, shown.stdout, shown.stderr, replayed.stdout, replayed.stderr]
    assert not [text for text in PERSONAL for output in outputs if text in output]
    assert "Spilled deferred task meta.purchase to Celery" in web.log_text()  # the right output was read
    assert personal_data_in_files(web.probe_dir, worker.probe_dir) == []
    redis.close()


def test_drop_removes_a_dead_letter_for_good(broker_url: str):
    redis = redis_client(broker_url, 5.0)
    store = DeadLetterStore(redis, ttl_seconds=60)
    message = MessageCodec([SIGNING_KEY]).seal(SpilledTask(
        key="drop:0a1b2c3d:meta.purchase:0", request_id="drop", name="meta.purchase",
        function="app.durable_tasks:meta_event", payload="[[],{}]", reason="failed",
    ))
    store.add(message, why="gave up after 3 attempt(s): DeliveryFailed: meta: delivery failed", attempts=3)
    assert 55 < redis.ttl("pyramid_deferred:dead_letter:drop:0a1b2c3d:meta.purchase:0") <= 60
    dropped = command(broker_url, "drop", "drop:0a1b2c3d:meta.purchase:0")
    assert dropped.returncode == 0 and "dropped drop:0a1b2c3d:meta.purchase:0" in dropped.stdout
    assert store.get("drop:0a1b2c3d:meta.purchase:0") is None and store.all() == []
    assert command(broker_url, "drop", "drop:0a1b2c3d:meta.purchase:0").returncode == 1
    redis.close()

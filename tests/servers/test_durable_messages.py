"""What a Celery worker does with messages written straight into its broker, with the real parts:
a redis-server and the shop's worker process (started here, one each for the module, stopped by
pid at its end). Messages are published by a Celery app of their own, in kombu's Redis format,
as anyone who can write to the broker could: the worker runs only signed messages that name a
declared durable function, and a valid message delivered twice runs once.

Every wait is a bounded poll; every "once" waits a little longer after the first run, so that a
second one would have had time to happen.
"""
# The fixtures are imported from tests/servers/durable_parts.py (shared with the other durable
# modules); a test's argument of the same name is pytest's injection, not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import pytest
from pyramid_deferred.celery import redis_client
from pyramid_deferred.durable import MessageCodec, SpilledTask
from pyramid_deferred.durable.dead_letters import DeadLetterStore
from redis import Redis

from tests.servers.durable_parts import (  # noqa: F401  (fixtures)
    DUPLICATE_WINDOW,
    ENCRYPTION_KEY,
    SIGNING_KEY,
    Worker,
    as_bytes,
    broker_url,
    codec,
    publish,
    running_worker,
    worker_lines,
)
from tests.servers.probe_app import DURABLE_LOG
from tests.servers.servers import poll

pytestmark = pytest.mark.servers

REFUSAL_TIMEOUT = 20.0
RECORD_DURABLE = "tests.servers.probe_app:record_durable"
IMPORT_MARK = "import_marker.imported"
"""What tests/servers/import_marker.py leaves when it is imported (not imported here to read it)."""
ROTATED_OUT_KEY = "p0OLwBSRlZQWPX8d2nbf3mHN9h3Z8cYPzXkM5Z2sLLs="
"""A Fernet key the worker does not have."""


@pytest.fixture(scope="module")
def worker(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    with running_worker(broker_url, tmp_path_factory.mktemp("messages"), {
        "APP_DEFERRED_TASK_SPILL_BACKOFF_SECONDS": "0.1", "APP_DEFERRED_TASK_SPILL_MAX_RETRIES": "2",
    }) as running:
        yield running


@pytest.fixture
def redis(broker_url: str) -> Iterator[Redis]:
    client = redis_client(broker_url, 5.0)
    yield client
    client.close()


def task(function: str, *args: object, key: str | None = None) -> SpilledTask:
    """A spilled task as a web process would seal it (the key unique to this test run)."""
    return SpilledTask(
        key=key or f"forge-{secrets.token_hex(4)}:0a1b2c3d:probe.durable:0", request_id="forge",
        name="probe.durable", function=function, payload=json.dumps([list(args), {}]), reason="failed",
    )


def durable_runs(worker: Worker, rid: str) -> list[str]:
    path = worker.probe_dir / DURABLE_LOG
    text = path.read_text() if path.exists() else ""
    return [line for line in text.splitlines() if line.startswith(f"{rid} ")]


def handled(worker: Worker, delivery: str) -> bool:
    """Celery logged the end of the delivery ``delivery`` (its task id), whatever the outcome."""
    return bool(worker_lines(worker, f"[{delivery}]", "succeeded"))


def wait_until_handled(worker: Worker, *deliveries: str) -> None:
    assert poll(lambda: all(handled(worker, d) for d in deliveries), timeout=REFUSAL_TIMEOUT,
                interval=0.1), worker.log()[-4000:]


def assert_acknowledged_once(worker: Worker, redis: Redis, *deliveries: str) -> None:
    """Each delivery was received once, never retried, and nothing is left in the broker for it."""
    time.sleep(DUPLICATE_WINDOW)
    for delivery in deliveries:
        assert len(worker_lines(worker, f"[{delivery}]", "received")) == 1, worker.log()[-4000:]
        assert not worker_lines(worker, f"[{delivery}]", "retry")
    assert redis.llen("celery") == 0
    unacked = b"".join(as_bytes(value) for value in redis.hvals("unacked"))
    assert not any(delivery.encode() in unacked for delivery in deliveries)


def test_a_message_naming_a_function_that_is_not_declared_is_refused_and_nothing_is_imported(
    worker, redis
):
    """``os:system`` with a shell command, unsigned and then signed with the real key (an insider,
    or a worker that lacks a module): refused, not run, not retried; a module of the test suite
    whose import leaves a mark is never imported."""
    ran = worker.probe_dir / "os-system-ran"
    command = f"touch {ran}"
    unsigned = codec().seal(task("os:system", command))
    del unsigned["signature"]
    cases = {"unsigned-system": unsigned, "signed-system": codec().seal(task("os:system", command)),
             "signed-import": codec().seal(task("tests.servers.import_marker:run", "x"))}
    deliveries = {name: f"{name}-{secrets.token_hex(2)}" for name in cases}
    for name, message in cases.items():
        publish(worker.broker_url, message, task_id=deliveries[name])
    wait_until_handled(worker, *deliveries.values())

    assert not ran.exists()
    assert not (worker.probe_dir / IMPORT_MARK).exists()  # never imported
    assert not (worker.probe_dir / "import_marker.ran").exists()
    [forged] = worker_lines(worker, "ERROR", "Refused a", f"'{deliveries['unsigned-system']}'")
    assert "the message is not signed: not run, not retried" in forged
    named = {"signed-system": "os:system", "signed-import": "tests.servers.import_marker:run"}
    for name, function in named.items():
        [refused] = worker_lines(worker, "ERROR", "DEAD LETTER", str(cases[name]["key"]))
        assert f"function {function}," in refused
        assert f"'{function}' is not a durable function of this process" in refused
    assert command not in worker.log()  # what a message carries is never logged
    assert_acknowledged_once(worker, redis, *deliveries.values())


def test_a_declared_function_with_a_missing_bad_or_altered_signature_is_refused(worker, redis):
    genuine = codec().seal(task(RECORD_DURABLE, "sig-genuine", 0))
    unsigned = dict(genuine)
    del unsigned["signature"]
    other_key = MessageCodec(["not-the-worker-s-key-but-long-enough-4Rt8"], [ENCRYPTION_KEY])
    badly_signed = other_key.seal(task(RECORD_DURABLE, "carried-by-a-forger", 0))
    altered = codec().seal(task(RECORD_DURABLE, "carried-then-altered", 0))
    altered["payload"] = codec().seal(task(RECORD_DURABLE, "carried-by-a-swap", 0))["payload"]
    cases = {"unsigned": unsigned, "bad": badly_signed, "altered": altered}
    deliveries = {name: f"sig-{name}-{secrets.token_hex(2)}" for name in cases}
    for name, message in cases.items():
        publish(worker.broker_url, message, task_id=deliveries[name])
    publish(worker.broker_url, genuine, task_id=(control := f"sig-genuine-{secrets.token_hex(2)}"))
    wait_until_handled(worker, *deliveries.values(), control)

    assert poll(lambda: durable_runs(worker, "sig-genuine"), timeout=REFUSAL_TIMEOUT)  # signed: it runs
    for rid in ("carried-by-a-forger", "carried-then-altered", "carried-by-a-swap"):
        assert durable_runs(worker, rid) == []
    reasons = {name: worker_lines(worker, "ERROR", "Refused a", f"'{delivery}'") for name, delivery in
               deliveries.items()}
    assert "is not signed" in reasons["unsigned"][0]
    assert "signature matches none of the signing keys" in reasons["bad"][0]
    assert "signature matches none of the signing keys" in reasons["altered"][0]
    for rid in ("carried-by-a-forger", "carried-then-altered", "carried-by-a-swap"):
        assert rid not in worker.log()  # what a message carries is never logged
    assert_acknowledged_once(worker, redis, *deliveries.values())


def test_a_valid_message_delivered_twice_runs_once(worker, redis):
    """The same spilled key reaches the worker twice (a retry racing a replay, a redelivery after
    a lost acknowledgement): its idempotency key lets one run."""
    message = codec().seal(task(RECORD_DURABLE, "twice", 0))
    first, second = f"twice-1-{secrets.token_hex(2)}", f"twice-2-{secrets.token_hex(2)}"
    publish(worker.broker_url, message, task_id=first)
    publish(worker.broker_url, message, task_id=second)
    wait_until_handled(worker, first, second)
    time.sleep(DUPLICATE_WINDOW)
    assert len(durable_runs(worker, "twice")) == 1, worker.log()[-4000:]
    assert worker_lines(worker, f"({message['key']}) already ran: not run again")
    assert redis.get(f"pyramid_deferred:durable:{message['key']}") == b"done"


def test_a_message_whose_arguments_this_worker_cannot_decrypt_is_kept_as_a_dead_letter(worker, redis):
    """Signed by us, but encrypted with a key the worker lacks (rotated out too early): not lost,
    kept for replay once the key is back."""
    message = MessageCodec([SIGNING_KEY], [ROTATED_OUT_KEY]).seal(task(RECORD_DURABLE, "undecryptable", 0))
    publish(worker.broker_url, message, task_id=(delivery := f"undecryptable-{secrets.token_hex(2)}"))
    wait_until_handled(worker, delivery)
    [line] = worker_lines(worker, "DEAD LETTER", str(message["key"]))
    assert "none of the deferred_task.encryption_key keys decrypts its arguments" in line
    stored = DeadLetterStore(redis, ttl_seconds=60).get(str(message["key"]))
    assert stored is not None and stored.message == message  # sealed as it came, for a replay
    assert durable_runs(worker, "undecryptable") == []

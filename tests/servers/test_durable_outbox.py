"""Crash safety: a web process killed (SIGKILL) with one durable task running and two queued after
its response loses none of them. They were recorded in the outbox before the response left; the
sweep the Celery worker's beat runs re-sends them once their lease ran out; each runs once, on the
worker; the outbox is empty afterwards. uWSGI's SIGTERM kills a busy worker without running any
Python code: the outbox recovers its tasks the same way.

Real parts: a redis-server (broker, keys, outbox), a Celery worker with its embedded beat
(``-B``), waitress, gunicorn gthread and uWSGI as subprocesses (the transactional outbox's test is
tests/servers/test_durable_sql_outbox.py). Leases of 2 s and a sweep every second keep the test
short; every wait is a bounded poll.
"""
# The fixtures are imported from tests/servers/durable_parts.py; a test's argument of the same name
# is pytest's injection, not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections.abc import Iterator

import pytest
from pyramid_deferred.celery import redis_client
from pyramid_deferred.durable.outbox import RedisOutbox

from tests.servers.contract import read_marker, wait_for_marker
from tests.servers.durable_parts import (  # noqa: F401  (fixtures)
    DUPLICATE_WINDOW,
    KEYS_ENV,
    Worker,
    broker_url,
    codec,
    running_worker,
)
from tests.servers.probe_app import DURABLE_LOG, SLEEP_IN_DURABLE_ENV
from tests.servers.servers import (
    GUNICORN_GTHREAD,
    UWSGI,
    WAITRESS,
    ServerSpec,
    fetch,
    poll,
    running_server,
    terminate,
)

pytestmark = pytest.mark.servers

LEASE_SECONDS = 2.0
SWEEP_SECONDS = 1.0
RECOVERY_TIMEOUT = 30.0
"""Lease + sweep interval, with room for a loaded machine (the claim of the task that was running
expires after its own lease too)."""
SHORT = {"APP_DEFERRED_TASK_LEASE_SECONDS": str(LEASE_SECONDS),
         "APP_DEFERRED_TASK_OUTBOX_SWEEP_SECONDS": str(SWEEP_SECONDS)}


@pytest.fixture(scope="module")
def sweeping_worker(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """The shop's Celery worker with its beat: the outbox sweep runs every second."""
    with running_worker(broker_url, tmp_path_factory.mktemp("outbox"), {**SHORT, SLEEP_IN_DURABLE_ENV: "0"},
                        beat=True) as running:
        yield running


@pytest.fixture
def outbox(broker_url: str) -> RedisOutbox:
    return RedisOutbox(redis_client(broker_url, 1.0))


def server_spec(spec: ServerSpec, worker: Worker) -> ServerSpec:
    env = {"APP_DEFERRED_TASK_BROKER_URL": worker.broker_url, **KEYS_ENV, **SHORT}
    return dataclasses.replace(spec, name=f"{spec.name}-outbox", env=env)


def runs_of(worker: Worker, rid: str) -> list[list[str]]:
    log = worker.probe_dir / DURABLE_LOG
    text = log.read_text() if log.exists() else ""
    return [line.split() for line in text.splitlines() if line.startswith(f"{rid} ")]


def assert_each_ran_once_on_the_worker(worker: Worker, rid: str, count: int, outbox: RedisOutbox) -> None:
    assert poll(lambda: len(runs_of(worker, rid)) >= count, timeout=RECOVERY_TIMEOUT), worker.log()
    time.sleep(DUPLICATE_WINDOW + SWEEP_SECONDS)
    runs = runs_of(worker, rid)
    assert sorted(index for _, index, _ in runs) == [str(i) for i in range(count)], runs  # once each
    assert {int(pid) for _, _, pid in runs} == {worker.process.pid}
    assert poll(lambda: outbox.pending() == 0, timeout=5), "the outbox still holds entries"
    assert "Outbox sweep re-sent" in worker.log()


def test_the_outbox_in_redis_keeps_entries_under_a_lease_and_two_sweeps_never_take_the_same(outbox):
    outbox.record([("k:1", '{"a":1}'), ("k:2", '{"a":2}')], lease_seconds=0.2)
    assert outbox.pending() == 2 and outbox.take_expired(10, 60) == []  # leased
    time.sleep(0.3)
    first = outbox.take_expired(1, 60)
    second = outbox.take_expired(10, 60)
    assert len(first) == len(second) == 1 and {first[0][0], second[0][0]} == {"k:1", "k:2"}
    assert outbox.take_expired(10, 60) == []  # both leased again by their sweep
    outbox.clear(["k:1", "k:2"])
    assert outbox.pending() == 0


def test_a_killed_waitress_loses_no_durable_task(sweeping_worker, outbox):
    rid = "killedwaitress"
    with running_server(server_spec(WAITRESS, sweeping_worker), sweeping_worker.probe_dir) as server:
        assert fetch(server.port, f"/probe/outbox?rid={rid}&seconds=60").status == 200
        wait_for_marker(server, f"{rid}.started", timeout=10)
        assert outbox.pending() == 3  # the running one and the two queued
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
    assert_each_ran_once_on_the_worker(sweeping_worker, rid, 3, outbox)


def test_a_killed_gunicorn_gthread_worker_loses_no_durable_task(sweeping_worker, outbox):
    rid = "killedgthread"
    with running_server(server_spec(GUNICORN_GTHREAD, sweeping_worker), sweeping_worker.probe_dir) as server:
        assert fetch(server.port, f"/probe/outbox?rid={rid}&seconds=60").status == 200
        started = wait_for_marker(server, f"{rid}.started", timeout=10)
        os.kill(started["pid"], signal.SIGKILL)  # the worker, not the arbiter: it starts another
        assert_each_ran_once_on_the_worker(sweeping_worker, rid, 3, outbox)
        assert terminate(server, timeout=20) == 0


def test_uwsgi_s_sigterm_kills_a_busy_worker_and_the_outbox_recovers_its_queued_tasks(
    sweeping_worker, outbox
):
    rid = "uwsgisigterm"
    with running_server(server_spec(UWSGI, sweeping_worker), sweeping_worker.probe_dir) as server:
        response = fetch(server.port, f"/probe/durable?rid={rid}&seconds=20&tasks=3&size=small")
        assert response.status == 200
        wait_for_marker(server, f"{rid}.started", timeout=10)
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=10)
    assert read_marker(server, rid) is None  # the plain task died with the worker
    assert_each_ran_once_on_the_worker(sweeping_worker, rid, 3, outbox)


def test_an_entry_is_a_sealed_message_and_holds_no_argument_in_clear(outbox, broker_url):
    from pyramid_deferred.durable import SpilledTask

    task = SpilledTask(key="req:t:meta.purchase:0", request_id="req", name="meta.purchase",
                       function="tests.servers.probe_app:record_durable",
                       payload=json.dumps([["buyer@example.com", 0], {}]), reason="outbox")
    outbox.record([(task.key, json.dumps(codec().seal(task)))], lease_seconds=60)
    client = redis_client(broker_url, 1.0)
    stored = "".join(str(value) for value in client.hgetall(outbox.keys[0]).values())
    assert task.key in stored and "buyer@example.com" not in stored  # encrypted: deployments set a key
    outbox.clear([task.key])


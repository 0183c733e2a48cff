"""Breaker state shared through a real redis-server, and what happens when Redis is gone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer
from redis import Redis

from app.services.advisable_ai import AdvisableAIService, AdvisableAISettings, Signal, SignalType
from app.services.breaker import ServiceBreaker
from app.services.breaker_storage import REDIS_COMMANDS_PER_TASK
from app.services.breaker_store import BreakerStore
from app.services.delivery import Outcome
from tests.integration.services.credentials import REDIS_PASSWORD, advisable_ai_env
from tests.integration.services.log_capture import LogCapture
from tests.integration.services.raw_servers import free_port
from tests.integration.services.redis_server import running_redis

REPO_ROOT = Path(__file__).resolve().parents[3]
WORKER = "tests.integration.services.breaker_worker"
SIGNAL = Signal(SignalType.VIEW, item_id="p-1", session_id="s-1")


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    with running_redis(port, tmp_path, password=REDIS_PASSWORD):
        yield port


def redis_url(port: int) -> str:
    return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"


def make_ai(
    base_url: str, http: httpx.Client, store: BreakerStore, **extra: str
) -> tuple[AdvisableAIService, ServiceBreaker]:
    settings = AdvisableAISettings.from_environ(advisable_ai_env(base_url, **extra))
    breaker = store.breaker("advisable_ai", settings.breaker)
    return AdvisableAIService(settings, http, breaker), breaker


def run_worker(port: int, base_url: str, count: int) -> list[str]:
    finished = subprocess.run(
        [sys.executable, "-m", WORKER, redis_url(port), base_url, str(count)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(finished.stdout))


def test_failures_in_one_process_open_the_breaker_for_another(
    redis_port: int, httpserver: HTTPServer, http_client: httpx.Client
) -> None:
    httpserver.expect_request("/v1/signals").respond_with_data("down", status=503)
    store = BreakerStore.from_environ({"CIRCUIT_BREAKER_REDIS_URL": redis_url(redis_port)})
    ai, breaker = make_ai(httpserver.url_for(""), http_client, store)
    assert breaker.current_state == "closed"

    assert run_worker(redis_port, httpserver.url_for(""), 4) == ["failed"] * 3 + ["skipped"]

    assert breaker.current_state == "open"
    assert ai.send_signal(SIGNAL) is Outcome.SKIPPED
    assert len(httpserver.log) == 3, "only the other process's requests reached the service"
    store.close()


def test_each_service_has_its_own_namespace(redis_port: int, httpserver: HTTPServer) -> None:
    store = BreakerStore.from_environ({"CIRCUIT_BREAKER_REDIS_URL": redis_url(redis_port)})
    settings = AdvisableAISettings()
    meta_breaker = store.breaker("meta", settings.breaker)
    ai_breaker = store.breaker("advisable_ai", settings.breaker)

    permit = meta_breaker.try_acquire(1.0)
    assert permit is not None
    for _ in range(settings.breaker.fail_max):
        meta_breaker.try_acquire(1.0).record_failure()  # type: ignore[union-attr]

    assert (meta_breaker.current_state, ai_breaker.current_state) == ("open", "closed")
    keys = Redis(port=redis_port, password=REDIS_PASSWORD).keys("*")
    assert b"deferred-task-runner:meta:pybreaker:state" in keys
    store.close()


def test_an_unreachable_redis_is_logged_once_and_the_breaker_works_on_local_state(
    httpserver: HTTPServer, http_client: httpx.Client, logs: LogCapture
) -> None:
    httpserver.expect_request("/v1/signals").respond_with_data("down", status=503)
    store = BreakerStore.from_environ({"CIRCUIT_BREAKER_REDIS_URL": redis_url(free_port())})
    ai, breaker = make_ai(httpserver.url_for(""), http_client, store)

    outcomes = [ai.send_signal(SIGNAL) for _ in range(10)]

    assert outcomes == [Outcome.FAILED] * 3 + [Outcome.SKIPPED] * 7
    assert breaker.current_state == "open"
    redis_warnings = [m for m in logs.messages("WARNING") if "Redis" in m]
    assert len(redis_warnings) == 1
    assert "unreachable" in redis_warnings[0]
    pybreaker_records = [r for r in logs.stdlib if r.name.startswith(("pybreaker", "app."))]
    assert pybreaker_records == [], "pybreaker's own per-call Redis errors must not be logged"


def test_redis_dying_mid_way_is_logged_once_and_pybreaker_stays_quiet(
    tmp_path: Path, httpserver: HTTPServer, http_client: httpx.Client, logs: LogCapture
) -> None:
    httpserver.expect_request("/v1/signals").respond_with_data("down", status=503)
    port = free_port()
    with running_redis(port, tmp_path, password=REDIS_PASSWORD):
        store = BreakerStore.from_environ({"CIRCUIT_BREAKER_REDIS_URL": redis_url(port)})
        ai, breaker = make_ai(httpserver.url_for(""), http_client, store)
        assert ai.send_signal(SIGNAL) is Outcome.FAILED  # counted in Redis
        assert (
            Redis(port=port, password=REDIS_PASSWORD).get(
                "deferred-task-runner:advisable_ai:pybreaker:fail_counter"
            )
            == b"1"
        )
    assert not [m for m in logs.messages("WARNING") if "Redis" in m]

    outcomes = [ai.send_signal(SIGNAL) for _ in range(6)]

    assert outcomes == [Outcome.FAILED] * 3 + [Outcome.SKIPPED] * 3  # a fresh local count
    assert breaker.current_state == "open"
    assert len([m for m in logs.messages("WARNING") if "Redis" in m]) == 1
    pybreaker_records = [r for r in logs.stdlib if r.name.startswith(("pybreaker", "app."))]
    assert pybreaker_records == []


def test_when_redis_comes_back_the_state_is_shared_again_and_that_is_logged_once(
    tmp_path: Path, httpserver: HTTPServer, http_client: httpx.Client, logs: LogCapture
) -> None:
    httpserver.expect_request("/v1/signals").respond_with_data("{}", status=202)
    port = free_port()
    store = BreakerStore.from_environ(
        {"CIRCUIT_BREAKER_REDIS_URL": redis_url(port), "CIRCUIT_BREAKER_REDIS_RETRY_AFTER": "0.2"}
    )
    ai, _ = make_ai(httpserver.url_for(""), http_client, store)
    assert ai.send_signal(SIGNAL) is Outcome.SENT  # on local state: Redis is not there yet

    with running_redis(port, tmp_path, password=REDIS_PASSWORD):
        time.sleep(0.25)
        assert [ai.send_signal(SIGNAL) for _ in range(3)] == [Outcome.SENT] * 3
        keys = Redis(port=port, password=REDIS_PASSWORD).keys("*")
        store.close()

    assert b"deferred-task-runner:advisable_ai:pybreaker:state" in keys
    assert len([m for m in logs.messages("WARNING") if "Redis" in m]) == 1
    assert len([m for m in logs.messages("INFO") if "answers again" in m]) == 1


def test_the_breakers_redis_round_trips_per_task_stay_within_the_declared_bound(
    redis_port: int, httpserver: HTTPServer, http_client: httpx.Client
) -> None:
    """The declared cost counts REDIS_COMMANDS_PER_TASK round trips: measure the costliest
    paths on the server (a pipelined transaction counts once per command, so this over-counts)."""
    httpserver.expect_request("/v1/signals").respond_with_data("down", status=503)
    store = BreakerStore.from_environ({"CIRCUIT_BREAKER_REDIS_URL": redis_url(redis_port)})
    ai, breaker = make_ai(
        httpserver.url_for(""),
        http_client,
        store,
        ADVISABLE_AI_BREAKER_FAIL_MAX="1",
        ADVISABLE_AI_BREAKER_RESET_TIMEOUT="0.05",
    )
    admin = Redis(port=redis_port, password=REDIS_PASSWORD)

    def commands_for_one_send() -> int:
        admin.config_resetstat()
        ai.send_signal(SIGNAL)
        stats = admin.info("stats")
        return int(stats["total_commands_processed"]) - 1  # CONFIG RESETSTAT itself

    tripping = commands_for_one_send()  # closed -> failure -> open
    time.sleep(1.1)  # Redis keeps opened_at in whole seconds
    failed_probe = commands_for_one_send()  # open -> half-open probe -> failure -> open
    httpserver.clear_all_handlers()
    httpserver.expect_request("/v1/signals").respond_with_data("{}", status=202)
    time.sleep(1.1)
    closing_probe = commands_for_one_send()  # open -> half-open probe -> success -> closed

    assert breaker.current_state == "closed"
    assert max(tripping, failed_probe, closing_probe) <= REDIS_COMMANDS_PER_TASK
    store.close()

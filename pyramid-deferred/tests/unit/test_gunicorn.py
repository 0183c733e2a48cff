"""gunicorn.conf.py's logic: the hard limit a sync worker's app gets, and the start-up checks."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from pyramid_deferred.gunicorn import (
    HARD_LIMIT_ENV,
    apply_hard_limit,
    check_settings,
    find_hook,
    forget_dead_worker_metrics,
    hard_limit_for,
)
from pyramid_deferred.hook import DeferredTaskHook
from pyramid_deferred.settings import DeferredTaskSettings


@pytest.mark.parametrize("timeout, limit", [(30, 27.0), (3, 2.0), (100, 90.0), (1, 0.5), (0, 0.0)])
def test_the_hard_limit_is_the_timeout_minus_a_margin(timeout, limit):
    assert hard_limit_for(timeout) == limit


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append((logging.INFO, message % args))

    def warning(self, message: str, *args: Any) -> None:
        self.lines.append((logging.WARNING, message % args))

    def error(self, message: str, *args: Any) -> None:
        self.lines.append((logging.ERROR, message % args))


def hook(hard_limit: float = 0.0) -> DeferredTaskHook:
    return DeferredTaskHook(DeferredTaskSettings(hard_limit_seconds=hard_limit))


def worker(cls: Any, app: Any, timeout: int = 30) -> Any:
    made = cls.__new__(cls)  # gunicorn workers are built by the arbiter; only these fields matter
    made.cfg = SimpleNamespace(timeout=timeout)
    made.log = Log()
    made.wsgi = app
    return made


def app_with(made: DeferredTaskHook) -> Any:
    return SimpleNamespace(registry=SimpleNamespace(deferred_task_hook=made))


def test_a_sync_worker_gets_its_timeout_minus_the_margin():
    made = hook()
    assert apply_hard_limit(worker(SyncWorker, app_with(made), timeout=3), environ={}) == 2.0
    assert made.hard_limit_seconds == 2.0


def test_a_gthread_worker_is_left_alone_its_heartbeat_has_its_own_thread():
    made = hook()
    assert apply_hard_limit(worker(ThreadWorker, app_with(made)), environ={}) is None
    assert made.hard_limit_seconds == 0.0


def test_the_environment_variable_always_wins_even_zero():
    made = hook()
    assert apply_hard_limit(worker(SyncWorker, app_with(made)), environ={HARD_LIMIT_ENV: "0"}) is None
    assert made.hard_limit_seconds == 0.0


def test_a_smaller_ini_value_is_kept_a_larger_one_capped():
    smaller, larger = hook(5.0), hook(60.0)
    assert apply_hard_limit(worker(SyncWorker, app_with(smaller)), environ={}) == 5.0
    assert apply_hard_limit(worker(SyncWorker, app_with(larger)), environ={}) == 27.0
    assert larger.hard_limit_seconds == 27.0


def test_the_app_is_found_behind_a_middleware_or_a_warning_says_what_to_do():
    made = hook()
    assert find_hook(SimpleNamespace(app=SimpleNamespace(application=app_with(made)))) is made
    lonely = worker(SyncWorker, SimpleNamespace())
    assert apply_hard_limit(lonely, environ={}) is None
    [(level, message)] = lonely.log.lines
    assert level == logging.WARNING and HARD_LIMIT_ENV in message


def server(worker_class: str, threads: int, graceful_timeout: float) -> Any:
    settings = {"worker_class": SimpleNamespace(get=lambda: worker_class)}
    cfg = SimpleNamespace(settings=settings, threads=threads, graceful_timeout=graceful_timeout)
    return SimpleNamespace(cfg=cfg, log=Log())


def test_start_up_warns_when_sync_is_asked_for_with_threads_or_the_grace_cannot_fit():
    quiet, loud = server("gthread", 4, 30), server("sync", 4, 10)
    check_settings(quiet, grace_seconds=10)
    check_settings(loud, grace_seconds=10)
    assert quiet.log.lines == []
    assert [level for level, _ in loud.log.lines] == [logging.WARNING, logging.WARNING]


def test_a_dead_workers_metrics_are_retired_only_in_multiprocess_mode(tmp_path, monkeypatch):
    from prometheus_client import multiprocess

    retired: list[int] = []
    monkeypatch.setattr(multiprocess, "mark_process_dead", retired.append)
    forget_dead_worker_metrics(SimpleNamespace(pid=41), environ={})
    forget_dead_worker_metrics(SimpleNamespace(pid=42), environ={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert retired == [42]


def test_a_worker_whose_task_is_stuck_past_the_hard_limit_asks_to_be_replaced():
    from pyramid_deferred import DeferredTaskRunner
    from pyramid_deferred.batch import RequestBatch
    from pyramid_deferred.gunicorn import ask_for_replacement_when_stuck

    made = hook()
    stuck = worker(ThreadWorker, app_with(made))
    stuck.alive, stuck.pid = True, 4242
    ask_for_replacement_when_stuck(stuck)
    assert made.watchdog.on_stuck is not None
    made.watchdog.on_stuck(RequestBatch(DeferredTaskRunner(), request_id="req-stuck"))
    assert stuck.alive is False
    [(level, message)] = stuck.log.lines
    assert level == logging.ERROR and "req-stuck" in message and "4242" in message

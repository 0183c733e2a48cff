"""RequestBatch: the request id and the report observers travel with the batch and apply to its run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from pyramid_deferred.batch import RequestBatch
from pyramid_deferred.core import DeferredTaskRunner
from pyramid_deferred.core.log import LOGGER_NAME, get_logger
from pyramid_deferred.request_id import RequestIdFilter, is_sane_request_id
from pyramid_deferred.testing import LogCapture

log = get_logger(LOGGER_NAME)


def runner_with(*names: str) -> DeferredTaskRunner:
    runner = DeferredTaskRunner()
    for name in names:
        runner.defer(saying_hello(name), max_cost_seconds=1, name=name)
    return runner


def saying_hello(name: str) -> Callable[[], None]:
    return lambda: log.info("task %s says hello", name)


def test_every_log_record_of_the_run_carries_the_batch_request_id(logs):
    RequestBatch(runner_with("a.one", "a.two"), request_id="req-42").run_once()
    # the trigger's DEBUG line; per task: its own line and the runner's DEBUG line; the summary
    assert len(logs.records) == 6
    assert {r.request_id for r in logs.records} == {"req-42"}
    assert {r.channel for r in logs.records} == {"DEFERRED_TASK"}


def test_the_request_id_follows_the_batch_to_another_thread(logs):
    batch = RequestBatch(runner_with("a.one"), request_id="req-thread")
    thread = threading.Thread(target=batch.run_once)
    thread.start()
    thread.join(timeout=5)
    [task_record] = logs.matching("task a.one says hello")
    assert task_record.request_id == "req-thread"
    assert task_record.thread == thread.ident


def test_records_written_after_the_run_do_not_keep_the_id(logs):
    RequestBatch(runner_with("a.one"), request_id="req-done").run_once()
    log.info("later")
    [later] = logs.matching("later")
    assert later.request_id == "-"


def test_a_batch_without_an_explicit_id_gets_a_generated_one():
    first, second = RequestBatch(DeferredTaskRunner()), RequestBatch(DeferredTaskRunner())
    assert first.request_id and is_sane_request_id(first.request_id) and first.request_id != second.request_id


def test_observers_get_the_batch_and_its_report_once_inside_the_request_context(logs):
    seen: list[tuple[str, tuple[str, ...]]] = []

    def observer(batch, report):
        log.info("observer ran")
        seen.append((batch.request_id, report.executed))

    batch = RequestBatch(runner_with("a.one"), request_id="req-obs", observers=(observer,))
    report = batch.run_once()
    assert batch.run_once() is None
    assert report is not None and seen == [("req-obs", ("a.one",))]
    [record] = logs.matching("observer ran")
    assert record.request_id == "req-obs"


def test_a_failing_observer_is_logged_and_the_next_one_still_runs(logs):
    calls: list[str] = []

    def broken(batch, report):
        raise RuntimeError("observer exploded")

    batch = RequestBatch(
        runner_with("a.one"), request_id="req-x", observers=(broken, lambda b, r: calls.append("second"))
    )
    assert batch.run_once() is not None
    assert calls == ["second"]
    [error] = [r for r in logs.records if r.levelname == "ERROR"]
    assert "observer" in error.message and error.exc_info[0] is RuntimeError


@pytest.fixture
def app_records() -> Iterator[tuple[logging.Logger, LogCapture]]:
    """An app's own logger (not the add-on's), with a handler that has ``RequestIdFilter``."""
    capture = LogCapture("shop.tasks")
    capture.addFilter(RequestIdFilter())
    with capture:
        yield logging.getLogger("shop.tasks"), capture


def test_the_app_s_own_records_get_the_id_from_request_id_filter_on_its_handler(app_records):
    app_log, capture = app_records
    seen = capture.records
    runner = DeferredTaskRunner()
    runner.defer(lambda: app_log.info("sent the event"), max_cost_seconds=1, name="a.send")
    RequestBatch(runner, request_id="req-app").run_once()
    app_log.info("start-up line")
    assert [(r.getMessage(), r.request_id) for r in seen] == [
        ("sent the event", "req-app"), ("start-up line", "-"),
    ]
    assert not hasattr(seen[0], "channel"), "the channel marks the add-on's records only"

"""Loguru set-up: the DEFERRED_TASK channel's file, its threshold, and stdlib routing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from loguru import logger
from pyramid_deferred import DeferredTaskRunner
from pyramid_deferred.batch import RequestBatch
from pyramid_deferred.core.log import deferred_task_logger

from config.logging import InterceptHandler, setup_logging


def configure(tmp_path: Path, threshold: str = "WARNING") -> tuple[Path, Iterator[None]]:
    path = tmp_path / "deferred_task.log"
    resource = setup_logging(threshold=threshold, max_files=3, path=str(path), app_log_level="DEBUG")
    next(resource)
    return path, resource


def finish(resource: Iterator[None]) -> None:
    for _ in resource:
        pass


def test_channel_file_gets_records_at_or_above_the_threshold_only(tmp_path):
    path, resource = configure(tmp_path, threshold="NOTICE")
    deferred_task_logger.info("info-line")
    deferred_task_logger.log("NOTICE", "notice-line")
    deferred_task_logger.error("error-line")
    logger.bind(channel="app").error("other-channel-line")
    finish(resource)
    text = path.read_text()
    assert "notice-line" in text and "error-line" in text
    assert "info-line" not in text and "other-channel-line" not in text


def test_stdlib_logging_of_servers_reaches_loguru(tmp_path, logs):
    _, resource = configure(tmp_path)
    handler_id = logger.add(logs, level=0)
    try:
        logging.getLogger("waitress").warning("queue depth %d", 7)
        logging.getLogger("some.library").error("boom")
    finally:
        logger.remove(handler_id)
        finish(resource)
    messages = {r["message"]: r["extra"]["channel"] for r in logs.records}
    assert messages["queue depth 7"] == "waitress"
    assert messages["boom"] == "some.library"


def test_file_lines_show_the_request_id_of_the_run_and_a_dash_elsewhere(tmp_path):
    path, resource = configure(tmp_path, threshold="INFO")
    deferred_task_logger.info("start-up line")
    with logger.contextualize(request_id="req-7f3a"):
        deferred_task_logger.info("task line")
    finish(resource)
    lines = path.read_text().splitlines()
    assert [line.split(" | ")[3:] for line in lines] == [["-", "start-up line"], ["req-7f3a", "task line"]]


def test_stdlib_logging_from_a_task_carries_the_id_once_routed_into_loguru(logs):
    library_logger = logging.getLogger("some.sdk")
    library_logger.addHandler(InterceptHandler())
    library_logger.propagate = False
    try:
        runner = DeferredTaskRunner()
        runner.defer(lambda: library_logger.warning("sdk call failed"), max_cost_seconds=1, name="sdk.call")
        RequestBatch(runner, request_id="req-sdk").run_once()
    finally:
        library_logger.handlers.clear()
        library_logger.propagate = True
    [record] = logs.matching("sdk call failed")
    assert record["extra"]["request_id"] == "req-sdk" and record["extra"]["channel"] == "some.sdk"

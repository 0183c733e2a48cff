"""Loguru set-up: the DEFERRED_TASK channel's file, its threshold, and stdlib routing (the
add-on logs through stdlib: its records reach loguru by the bridge, with their channel, request
id and level)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loguru import logger
from pyramid_deferred import NOTICE, DeferredTaskRunner
from pyramid_deferred.batch import RequestBatch
from pyramid_deferred.core.log import get_logger, request_id_var
from pyramid_deferred.durable import durable, durable_function
from pyramid_deferred.testing import FakeClock

from config.logging import InterceptHandler, setup_logging

add_on_log = get_logger("pyramid_deferred.core.runner")


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
    add_on_log.info("info-line")
    add_on_log.log(NOTICE, "notice-line")
    add_on_log.error("error-line")
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
    add_on_log.info("start-up line")
    token = request_id_var.set("req-7f3a")  # as a batch abandoned at exit does
    try:
        add_on_log.info("task line")
    finally:
        request_id_var.reset(token)
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


def test_the_add_on_s_records_reach_loguru_with_their_channel_request_id_and_level(tmp_path):
    """The shop's own set-up, nothing added: a skipped task (NOTICE, on the add-on's stdlib
    logger) reaches loguru through the bridge as NOTICE, on the DEFERRED_TASK channel, with the
    batch's id: the channel's file takes it, in its format."""
    path, resource = configure(tmp_path, threshold="NOTICE")
    seen: list[Any] = []
    sink = logger.add(lambda message: seen.append(message.record), level=0)
    try:
        runner = DeferredTaskRunner(budget_seconds=1.0, clock=FakeClock())
        runner.defer(lambda: None, max_cost_seconds=5, name="crm.sync")
        RequestBatch(runner, request_id="req-bridge").run_once()
    finally:
        logger.remove(sink)
        finish(resource)
    [skipped] = [r for r in seen if "Skipped deferred task crm.sync" in str(r["message"])]
    assert skipped["level"].name == "NOTICE"
    assert skipped["extra"] == {"channel": "DEFERRED_TASK", "request_id": "req-bridge"}
    assert skipped["name"] == "pyramid_deferred.core.runner"  # the caller kept: the add-on's module
    [line] = path.read_text().splitlines()
    _, level, _, request_id, message = line.split(" | ")
    assert (level.strip(), request_id) == ("NOTICE", "req-bridge")
    assert message.startswith("Skipped deferred task crm.sync (priority 50): cost 5s > 1.000s")


@durable_function
def send_welcome(email: str) -> None:
    """Its raising line names the argument: loguru's diagnose would print its value."""
    raise RuntimeError("the mail service refused the address") if email else ValueError("no address")


def test_a_failed_durable_task_s_arguments_never_reach_a_diagnosing_loguru_sink(tmp_path):
    """A loguru sink with its defaults (``diagnose=True``: every frame's variables) behind the
    bridge: the add-on's ERROR carries the traceback, never the task's arguments."""
    _, resource = configure(tmp_path)
    output = io.StringIO()
    sink = logger.add(output, level="DEBUG", diagnose=True, backtrace=True, colorize=False)
    try:
        runner = DeferredTaskRunner()
        runner.defer(durable(send_welcome, "ewa.nowak@example.com"), max_cost_seconds=1, name="mail.welcome")
        RequestBatch(runner, request_id="req-mail").run_once()  # no spill-over: logged at ERROR
    finally:
        logger.remove(sink)
        finish(resource)
    text = output.getvalue()
    assert "Deferred task mail.welcome failed after" in text
    assert "RuntimeError: the mail service refused the address" in text
    assert "ewa.nowak" not in text

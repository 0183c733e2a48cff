"""Durable tasks spill to Celery, with the real parts: a redis-server and a Celery worker process
started here (127.0.0.1, one each for the module, stopped by pid at its end), the shop's revenue
events against a stub of Meta, and a waitress server stopped by SIGTERM.

Every wait is a bounded poll; every assertion on "exactly once" waits a little longer after the
first delivery, so that a duplicate would have had time to arrive.
"""
# The fixtures are imported from tests/servers/durable_parts.py (shared with the other durable
# modules); a test's argument of the same name is pytest's injection, not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import time

import pytest

from tests.functional.shop import place_order
from tests.servers.contract import read_task_log, wait_for_marker
from tests.servers.durable_parts import (  # noqa: F401  (fixtures)
    DELIVERY_TIMEOUT,
    DUPLICATE_WINDOW,
    KEYS_ENV,
    RESET_TIMEOUT,
    broker_url,
    messages,
    meta,
    records,
    shop,
    stub_server,
    worker,
)
from tests.servers.probe_app import DURABLE_LOG
from tests.servers.servers import WAITRESS, fetch, free_port, poll, running_server, terminate

pytestmark = pytest.mark.servers


def test_a_durable_task_the_budget_skips_spills_and_the_worker_runs_it_exactly_once(
    stub_server, meta, worker, records
):
    with shop(stub_server, **{"deferred_task.broker_url": worker.broker_url,
                              "deferred_task.budget_seconds": "0.001"}) as (app, reports):
        order = place_order(app).json["order"]
    checkout = reports[-1]
    assert "meta.purchase" in checkout.spilled and "manago.purchase" in checkout.spilled
    assert checkout.balanced and checkout.deferred == len(checkout.results)
    assert meta.delivered(order) == []  # nothing was sent from the web process
    assert poll(lambda: meta.delivered(order), timeout=DELIVERY_TIMEOUT), worker.log()
    time.sleep(DUPLICATE_WINDOW)
    assert len(meta.delivered(order)) == 1
    notices = messages(records, "NOTICE")
    assert any("Spilled deferred task meta.purchase to Celery (skipped" in m for m in notices)


def test_a_service_known_down_spills_without_a_call_and_is_delivered_once_after_the_reset_timeout(
    stub_server, meta, worker, records
):
    meta.status = 500
    with shop(stub_server, **{"deferred_task.broker_url": worker.broker_url}) as (app, reports):
        # fail_max 2: the cart's AddToCart and the Purchase fail, and the breaker opens
        failing = [place_order(app).json["order"]]
        spilled_at = time.time()
        down = place_order(app).json["order"]
        # The open breaker: no call for it, no budget spent (the Celery worker may meanwhile be
        # retrying the first order's purchase: that call is the worker's, not this process's).
        assert [call for call in meta.calls if call[1] == down] == []
        meta.status = 200  # the service recovers
    reasons = [m for m in messages(records, "NOTICE") if m.startswith("Spilled deferred task meta.purchase")]
    assert len(reasons) == 1 and "(service_down: its service's circuit is open" in reasons[0]
    assert sum("Spilled deferred task meta.purchase to Celery (failed" in m
               for m in messages(records, "WARNING")) == 1
    assert all(report.balanced for report in reports)
    for order in [*failing, down]:
        assert poll(lambda order=order: meta.delivered(order),  # type: ignore[misc]
                    timeout=DELIVERY_TIMEOUT), worker.log()
    assert meta.delivered(down)[0] >= spilled_at + RESET_TIMEOUT * 0.8  # Celery waited for the reset
    time.sleep(DUPLICATE_WINDOW)
    assert [len(meta.delivered(order)) for order in [*failing, down]] == [1, 1]


def test_sigterm_with_durable_tasks_queued_spills_them_none_lost_none_run_twice(worker):
    spec = WAITRESS.__class__(
        "waitress-durable", WAITRESS.argv, concurrency=4, family="waitress",
        env={"APP_DEFERRED_TASK_BROKER_URL": worker.broker_url, **KEYS_ENV,
             "APP_DEFERRED_TASK_STRATEGY": "thread", "APP_DEFERRED_TASK_WORKER_THREADS": "1",
             "APP_DEFERRED_TASK_SHUTDOWN_GRACE_SECONDS": "0.5"},
    )
    with running_server(spec, worker.probe_dir) as server:
        response = fetch(server.port, "/probe/durable?rid=sigterm&seconds=3&tasks=3")
        assert response.status == 200
        wait_for_marker(server, "sigterm.started", timeout=10)
        server_pid = server.process.pid
        code = terminate(server, timeout=15)
        assert code == 0, server.log_text()
        task_log = read_task_log(server)

    durable_log = worker.probe_dir / DURABLE_LOG

    def lines() -> list[list[str]]:
        text = durable_log.read_text() if durable_log.exists() else ""
        return [line.split() for line in text.splitlines() if line.startswith("sigterm ")]

    assert poll(lambda: len(lines()) >= 3, timeout=DELIVERY_TIMEOUT), worker.log()
    time.sleep(DUPLICATE_WINDOW)
    runs = lines()
    assert sorted(index for _, index, _ in runs) == ["0", "1", "2"]  # none lost, none twice
    assert all(int(pid) != server_pid for _, _, pid in runs)  # the worker ran them, not the server
    assert "probe.sleep.sigterm (still running)" in task_log  # the plain task is named, as before
    assert "probe.durable" not in next(line for line in task_log.splitlines() if "grace period" in line)


def test_broker_down_logs_the_task_for_replay_without_touching_the_response(stub_server, meta, records):
    closed = free_port()
    url = f"redis://:pw-never-logged@127.0.0.1:{closed}/0"
    with shop(stub_server, **{"deferred_task.broker_url": url, "deferred_task.budget_seconds": "0.001",
                              "deferred_task.broker_timeout_seconds": "0.5"}) as (app, reports):
        started = time.monotonic()
        response = place_order(app)
        took = time.monotonic() - started
    assert response.status_int == 200 and response.json["status"] == "placed"
    assert took < 5.0  # one bounded attempt, then the rest fail at once (logged)
    errors = [m for m in messages(records, "ERROR") if "could not spill to Celery" in m]
    meta_error = next(m for m in errors if m.startswith("Deferred task meta.purchase "))
    assert "it is LOST: key=" in meta_error
    assert "function=app.durable_tasks:meta_event reason=skipped" in meta_error
    assert "meta.purchase" in reports[-1].skipped and reports[-1].balanced
    every_line = "\n".join(str(r["message"]) + str(r["extra"]) + str(r["exception"]) for r in records)
    assert "pw-never-logged" not in every_line

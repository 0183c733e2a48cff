"""The outbox: a request's durable tasks are recorded, sealed, before its response leaves (one
write; none for a request without durable tasks), cleared once their fate is final here, kept
when their spill failed; the sweep re-sends what a dead process left. In memory here; against
a real Redis in tests/servers/test_durable_outbox.py."""

from __future__ import annotations

import json

import pytest

from pyramid_deferred import testing as fx
from pyramid_deferred.batch import RequestBatch, Trigger
from pyramid_deferred.core import DeferredTaskRunner, RunReport
from pyramid_deferred.durable import SpillOver, durable
from pyramid_deferred.durable.outbox import resend_expired
from pyramid_deferred.testing import TEST_CODEC, FakeClock, FakeSpiller, MemoryClaims, MemoryOutbox

LEASE = 60.0


class Request:
    """One request's batch on a spill-over with an outbox in memory."""

    def __init__(self, *, budget: float = 10.0, outbox: MemoryOutbox | None = None) -> None:
        self.clock = FakeClock()
        self.outbox = outbox or MemoryOutbox(self.clock)
        self.spiller = FakeSpiller()
        self.claims = MemoryClaims()
        self.spill_over = SpillOver(self.spiller, self.claims, codec=TEST_CODEC, outbox=self.outbox,
                                    lease_seconds=LEASE, clock=self.clock)
        self.runner = DeferredTaskRunner(budget_seconds=budget, clock=self.clock)
        self.reports: list[RunReport] = []
        self.batch = RequestBatch(self.runner, request_id="req-outbox", clock=self.clock,
                                  spill_over=self.spill_over,
                                  observers=(lambda batch, report: self.reports.append(report),))

    def defer_purchase(self, index: int, *, cost: float = 1.0, always: bool = False) -> None:
        self.runner.defer(durable(fx.record_durable, "outbox", index), max_cost_seconds=cost,
                          name=f"meta.purchase.{index}", always=always)

    def respond(self, *, failed: bool = False) -> None:
        """The response leaves the app: the batch is scheduled (what the finished callback does)."""
        self.batch.request_failed = failed
        self.batch.schedule(copy_context=True)


def test_a_request_s_durable_tasks_are_recorded_sealed_in_one_write_before_the_response_leaves():
    request = Request()
    request.defer_purchase(0)
    request.defer_purchase(1)
    request.runner.defer(lambda: None, max_cost_seconds=1, name="matomo.flush")

    request.respond()

    assert request.outbox.records == 1
    assert len(request.outbox.entries) == 2  # the plain task is not durable: not recorded
    for key, (text, until) in request.outbox.entries.items():
        task = TEST_CODEC.open(json.loads(text))  # signed: the sweep sends it as it is
        assert task.key == key and task.reason == "outbox" and until == request.clock() + LEASE


def test_a_request_without_durable_tasks_writes_nothing():
    request = Request()
    request.runner.defer(lambda: None, max_cost_seconds=1, name="matomo.flush")
    request.respond()
    request.batch.run_once(Trigger.CLOSE)
    assert request.outbox.records == 0


def test_a_failed_request_records_only_its_always_tasks():
    request = Request()
    request.defer_purchase(0)
    request.defer_purchase(1, always=True)
    request.respond(failed=True)
    assert [key.split(":")[2] for key in request.outbox.entries] == ["meta.purchase.1"]


def test_entries_are_cleared_once_their_tasks_ran_here():
    request = Request()
    request.defer_purchase(0)
    request.defer_purchase(1)
    request.respond()

    report = request.batch.run_once(Trigger.CLOSE)

    assert report is not None and len(report.executed) == 2
    assert request.outbox.entries == {}


def test_a_task_whose_spill_failed_stays_in_the_outbox_for_the_sweep_and_the_rest_is_cleared():
    request = Request(budget=0.5)
    request.defer_purchase(0, cost=0.1)  # fits: runs here
    request.defer_purchase(1, cost=1.0)  # does not fit: skipped, and its spill fails
    request.respond()
    request.spiller.down = True

    report = request.batch.run_once(Trigger.CLOSE)

    assert report is not None and report.executed == ("meta.purchase.0",)
    assert report.skipped == ("meta.purchase.1",)
    [kept] = request.outbox.entries
    assert ":meta.purchase.1:" in kept


def test_an_outbox_that_cannot_be_written_leaves_the_request_and_its_tasks_alone(logs):
    outbox = MemoryOutbox()
    outbox.down = True
    request = Request(outbox=outbox)
    request.defer_purchase(0)

    request.respond()
    report = request.batch.run_once(Trigger.CLOSE)

    assert report is not None and report.executed == ("meta.purchase.0",)
    [error] = logs.at("ERROR")
    assert "Could not record 1 durable task(s) in the memory outbox (ConnectionError" in error
    assert ":meta.purchase.0:" in error and '["outbox"' not in error  # keys, never arguments


def test_the_sweep_re_sends_what_a_dead_process_left_once_its_lease_ran_out():
    request = Request()
    request.defer_purchase(0)
    request.defer_purchase(1)
    request.respond()  # recorded; then the process dies: nothing runs, nothing is cleared
    sent: list[str] = []

    def send(key: str, message: str) -> None:
        sent.append(key)

    assert resend_expired(request.outbox, send, lease_seconds=LEASE) == 0  # the lease still holds
    request.clock.advance(LEASE)
    keys = sorted(request.outbox.entries)
    assert resend_expired(request.outbox, send, lease_seconds=LEASE) == 2
    assert sorted(sent) == keys
    assert request.outbox.entries == {}  # sent: cleared


def test_an_entry_the_sweep_cannot_send_stays_leased_again_for_a_later_sweep(logs):
    request = Request()
    request.defer_purchase(0)
    request.respond()
    request.clock.advance(LEASE)

    def broker_down(key: str, message: str) -> None:
        raise ConnectionError("the broker is down")

    assert resend_expired(request.outbox, broker_down, lease_seconds=LEASE) == 0
    [(_key, (_, until))] = request.outbox.entries.items()
    assert until == request.clock() + LEASE
    assert resend_expired(request.outbox, lambda k, m: None, lease_seconds=LEASE) == 0  # not yet
    request.clock.advance(LEASE)
    assert resend_expired(request.outbox, lambda k, m: None, lease_seconds=LEASE) == 1
    assert any("could not be re-sent (ConnectionError)" in line for line in logs.at("WARNING"))


@pytest.mark.parametrize("stopped", ["abandoned", "run"])
def test_a_batch_abandoned_at_the_stop_clears_what_it_spilled(stopped):
    request = Request()
    request.defer_purchase(0)
    request.respond()
    if stopped == "abandoned":
        request.batch.abandon()
        assert [task.reason for task in request.spiller.sent] == ["shutdown"]
    else:
        request.batch.run_once(Trigger.CLOSE)
    assert request.outbox.entries == {}

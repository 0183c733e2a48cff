"""Durable tasks without a broker: durable() refuses what cannot travel (or was not declared with
@durable_function), at the call; the runner spills (through a fake spiller and an in-memory key
store) instead of skipping or failing; the ledger balances for any mix of tasks and outcomes (a
property test); log lines name a spilled task without its arguments or a traceback's locals."""

from __future__ import annotations

import io
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyramid_deferred import testing as fx
from pyramid_deferred.core import DeferredTaskRunner, Outcome
from pyramid_deferred.durable import (
    Claim,
    NotDurableError,
    SpillOver,
    decode_payload,
    durable,
    durable_function,
)
from pyramid_deferred.testing import TEST_CODEC as CODEC
from pyramid_deferred.testing import FakeClock, FakeSpiller, MemoryClaims


def runner_with_spill(*, budget: float = 10.0, down: dict[str, float] | None = None):
    clock = FakeClock()
    spiller, claims = FakeSpiller(), MemoryClaims()
    spill_over = SpillOver(spiller, claims, codec=CODEC, service_check=(down or {}).get, clock=clock)
    runner = DeferredTaskRunner(budget_seconds=budget, clock=clock)
    runner.durable = spill_over.for_request("req-1")
    return runner, spiller, claims, clock


def test_durable_refuses_a_lambda_a_closure_and_a_bound_method_naming_the_problem():
    def closure() -> None: ...

    with pytest.raises(NotDurableError, match="lambda or a closure"):
        durable(lambda: None)
    with pytest.raises(NotDurableError, match="lambda or a closure"):
        durable(closure)
    with pytest.raises(NotDurableError, match="is not declared durable: decorate it with @durable_function"):
        durable(FakeSpiller().send, 1)


@pytest.mark.parametrize(("args", "kwargs", "problem"), [
    ((object(),), {}, r"arguments\[0\]\[0\] is a object"),
    (((1, 2),), {}, "tuple, which comes back from JSON as a list"),
    ((), {"when": float("nan")}, r"arguments\[1\]\['when'\] is nan"),
    (({1: "a"},), {}, "JSON object keys are strings"),
    (("x" * 70_000,), {}, "more than 65536"),
])
def test_durable_refuses_arguments_that_would_not_come_back_the_same(args, kwargs, problem):
    with pytest.raises(NotDurableError, match=problem):
        durable(fx.record_durable, *args, **kwargs)


def test_a_durable_task_refused_at_the_defer_call_is_never_queued():
    runner = DeferredTaskRunner()
    with pytest.raises(NotDurableError, match=r"testing:record_durable"):
        runner.defer(durable(fx.record_durable, {"order": object()}), max_cost_seconds=1,
                     name="meta.purchase")
    assert not runner.has_tasks()


def test_a_durable_call_by_path_runs_in_process_like_any_task_and_names_itself():
    fx.DURABLE_CALLS.clear()
    call = durable("pyramid_deferred.testing:record_durable", "o-1", 2, currency="EUR")
    assert decode_payload(call.payload) == (["o-1", 2], {"currency": "EUR"})
    runner = DeferredTaskRunner()
    runner.defer(call, max_cost_seconds=1)
    report = runner.run()
    assert report.executed == ("pyramid_deferred.testing.record_durable",)
    assert fx.DURABLE_CALLS == [("o-1", 2, ("currency", "EUR"))]


def test_skipped_failed_and_service_down_durable_tasks_spill_and_plain_ones_do_not():
    runner, spiller, claims, _ = runner_with_spill(budget=1.0, down={"meta": 12.5})
    runner.defer(durable(fx.record_durable, 1, service="meta"), max_cost_seconds=0.5, priority=90,
                 name="meta.purchase")
    runner.defer(durable(fx.fail_durable), max_cost_seconds=0.5, priority=80, name="manago.purchase")
    runner.defer(durable(fx.record_durable, 2), max_cost_seconds=5, priority=70, name="ai.purchase")
    runner.defer(lambda: None, max_cost_seconds=5, priority=60, name="plain.skipped")
    report = runner.run()
    assert report.spilled == ("meta.purchase", "manago.purchase", "ai.purchase")
    assert report.skipped == ("plain.skipped",)
    assert report.balanced and report.deferred == 4
    reasons = {task.name: (task.reason, task.countdown) for task in spiller.sent}
    assert reasons == {"meta.purchase": ("service_down", 12.5), "manago.purchase": ("failed", 0.0),
                       "ai.purchase": ("skipped", 0.0)}
    keys = [task.key for task in spiller.sent]
    assert len(set(keys)) == 3 and all(key.startswith("req-1:") for key in keys)
    assert claims.keys == {}  # the failed one gave its claim back for the engine's run


def test_a_task_that_raises_service_down_spills_with_its_retry_delay():
    runner, _, _, _ = runner_with_spill()

    runner.defer(durable(fx.record_durable, 1), max_cost_seconds=1, name="meta.purchase")
    runner.durable.spill_over.service_check = None
    report = runner.run()
    assert report.executed == ("meta.purchase",)
    runner2, spiller2, _, _ = runner_with_spill()
    runner2.defer(durable(fx.service_down_durable, "meta", 7.0), max_cost_seconds=1, name="x")
    assert runner2.run().spilled == ("x",)
    assert [(t.reason, t.countdown) for t in spiller2.sent] == [("service_down", 7.0)]


def test_an_executed_durable_task_records_its_key_and_a_spilled_copy_is_not_run_again():
    runner, _, claims, _ = runner_with_spill()
    runner.defer(durable(fx.record_durable, 3), max_cost_seconds=1, name="meta.purchase")
    assert runner.run().executed == ("meta.purchase",)
    assert list(claims.keys.values()) == ["done"]
    [key] = claims.keys
    assert claims.claim(key, 60) is Claim.DONE  # what the Celery task would see


def test_broker_down_the_task_keeps_its_usual_outcome_and_is_logged_for_replay(logs):
    runner, spiller, _, _ = runner_with_spill(budget=0.5)
    spiller.down = True
    runner.defer(durable(fx.record_durable, "o-9"), max_cost_seconds=5, name="meta.purchase")
    runner.defer(durable(fx.record_durable, "o-10"), max_cost_seconds=5, name="manago.purchase")
    report = runner.run()
    assert report.skipped == ("meta.purchase", "manago.purchase") and report.balanced
    errors = logs.at("ERROR")
    assert len(errors) == 2 and all("it is LOST: key=req-1:" in e for e in errors)
    assert "function=pyramid_deferred.testing:record_durable reason=skipped" in errors[0]
    assert "o-9" not in errors[0] and "o-10" not in errors[1]  # the arguments are never logged
    assert "not retried for a few seconds" in errors[1]  # no second wait


KINDS = st.sampled_from(["ok", "raises", "slow", "durable-ok", "durable-raises", "durable-slow", "forget"])


@settings(max_examples=150, deadline=None)
@given(kinds=st.lists(KINDS, max_size=12), budget=st.sampled_from([0.0, 0.5, 3.0]),
       broker_down=st.booleans(), failed=st.booleans())
def test_the_ledger_balances_for_every_mix_of_tasks(kinds, budget, broker_down, failed):
    """deferred = executed + failed + skipped + discarded + forgotten + spilled, whatever happens."""
    runner, spiller, _, clock = runner_with_spill(budget=budget)
    spiller.down = broker_down

    def advance() -> None:
        clock.now += 1.0

    for index, kind in enumerate(kinds):
        name = f"t{index % 4}"
        if kind == "forget":
            runner.forget(name)
        elif kind.startswith("durable"):
            function = fx.fail_durable if kind.endswith("raises") else fx.record_durable
            runner.defer(durable(function, index), max_cost_seconds=2.0 if kind.endswith("slow") else 0.1,
                         name=name, always=index % 2 == 0)
        else:
            runner.defer((lambda: 1 / 0) if kind == "raises" else advance,
                         max_cost_seconds=2.0 if kind == "slow" else 0.1, name=name)
    report = runner.run(request_failed=failed)
    assert report.balanced, report
    counted = sum(len(getattr(report, o.value)) for o in Outcome)
    assert counted == report.deferred == len(report.results)
    assert (len(report.spilled) == 0) or not broker_down


def test_a_batch_still_queued_at_shutdown_spills_its_durable_tasks_and_names_the_rest():
    from pyramid_deferred.batch import RequestBatch

    spiller = FakeSpiller()
    reports = []
    runner = DeferredTaskRunner()
    runner.defer(lambda: None, max_cost_seconds=1, name="plain.flush")
    runner.defer(durable(fx.record_durable, 5), max_cost_seconds=1, name="meta.purchase")
    spill_over = SpillOver(spiller, MemoryClaims(), codec=CODEC)
    batch = RequestBatch(runner, request_id="req-stop", spill_over=spill_over,
                         observers=(lambda batch, report: reports.append(report),))
    assert batch.abandon() == ["plain.flush"]
    sent = [(t.name, t.reason, t.request_id) for t in spiller.sent]
    assert sent == [("meta.purchase", "shutdown", "req-stop")]
    [report] = reports
    assert report.spilled == ("meta.purchase",) and report.discarded == ("plain.flush",) and report.balanced
    assert batch.run_once() is None  # decided: it never runs after being abandoned


@durable_function
def send_to(email: str) -> None:
    """A durable function whose argument is personal data, and a local variable of its frame."""
    raise RuntimeError("the mail service refused the address") if email else ValueError("no address")


def test_a_failed_durable_task_spills_with_a_traceback_but_never_its_arguments_or_locals(logs):
    """What a host's handler writes (a formatter with the traceback, as an .ini's console has):
    the spill's WARNING names the function and shows where it failed, never the arguments; and
    its record holds no frames, whose variables a handler could read (loguru's ``diagnose``
    behind a bridge, an error tracker's local variables)."""
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(logging.Formatter("%(levelname)s %(request_id)s %(message)s"))
    logging.getLogger("pyramid_deferred").addHandler(handler)
    try:
        runner, spiller, _, _ = runner_with_spill()
        runner.defer(durable(send_to, "ewa.nowak@example.com"), max_cost_seconds=1, name="mail.welcome")
        assert runner.run().spilled == ("mail.welcome",)
    finally:
        logging.getLogger("pyramid_deferred").removeHandler(handler)
    text = output.getvalue()
    [spilled] = logs.matching("Spilled deferred task mail.welcome")
    assert spilled.exc_info[2] is None and spilled.exc_info[1].__traceback__ is None  # no frames to read
    assert "Spilled deferred task mail.welcome to FakeEngine (failed" in text
    assert "test_durable:send_to" in text  # the function, by name
    assert "Traceback (most recent call last)" in text and "RuntimeError: the mail service refused" in text
    assert "ewa.nowak" not in text
    assert spiller.sent[0].payload == '[["ewa.nowak@example.com"],{}]'  # it travelled, sealed

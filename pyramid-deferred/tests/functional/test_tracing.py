"""``config.include("pyramid_deferred.tracing")``: a span per run in the request's trace, a child span
per task, checked with the SDK's in-memory exporter and, for the request span, the real
opentelemetry-instrumentation-pyramid."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.pyramid import PyramidInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pyramid.config import Configurator
from pyramid.interfaces import ITweens
from pyramid.request import Request
from pyramid.response import Response
from webtest import TestApp

import pyramid_deferred.tracing
from pyramid_deferred import PRIORITY_CRITICAL, PRIORITY_LOW, DeferredTaskRunner
from pyramid_deferred.batch import RequestBatch, Trigger
from pyramid_deferred.core import Outcome, RunReport, TaskResult
from pyramid_deferred.hook import get_hook
from pyramid_deferred.tracing import TRACE_PARENT, TRACING_TWEEN
from pyramid_deferred.tracing.spans import TracingObserver, record_run

View = Callable[[Request], Response]


class Recorder(SpanProcessor):
    """Exports ended spans to the exporter while this module's tests run, then stops (the global
    provider outlives the module; other tests' spans must not pile up here)."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter
        self.active = True

    def on_end(self, span: ReadableSpan) -> None:
        if self.active:
            self.exporter.export([span])


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):  # the first to configure one in this process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    assert isinstance(provider, TracerProvider)
    memory = InMemorySpanExporter()
    recorder = Recorder(memory)
    provider.add_span_processor(recorder)
    yield memory
    recorder.active = False
    memory.clear()


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Callable[[], list[ReadableSpan]]:
    exporter.clear()
    return lambda: list(exporter.get_finished_spans())


@pytest.fixture
def make_app(serve: Callable[[Configurator], TestApp]) -> Iterator[Callable[..., TestApp]]:

    def make(view: View, settings: dict[str, Any] | None = None, *, instrument: bool = True) -> TestApp:
        config = Configurator(settings={"deferred_task.strategy": "close", **(settings or {})})
        if instrument:
            PyramidInstrumentor().instrument_config(config)
        config.include("pyramid_deferred")
        config.include("pyramid_deferred.tracing")
        config.add_route("view", "/things/{id}")
        config.add_view(view, route_name="view")
        return serve(config)

    yield make


def by_name(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def boom() -> None:
    raise ValueError("the CRM said no")


def five_tasks(request: Request) -> Response:
    runner: DeferredTaskRunner = request.deferred_task
    runner.defer(lambda: time.sleep(0.02), max_cost_seconds=0.5, priority=PRIORITY_CRITICAL,
                 name="meta.purchase")
    runner.defer(boom, max_cost_seconds=0.5, name="crm.sync")
    runner.defer(lambda: None, max_cost_seconds=0.01, priority=PRIORITY_LOW, name="cheap.after")
    runner.defer(lambda: None, max_cost_seconds=60, priority=PRIORITY_LOW, name="too.costly")
    runner.defer(lambda: None, max_cost_seconds=1, name="cancelled")
    runner.forget("cancelled")
    return Response("ok")


def test_the_run_is_a_child_of_the_ended_request_span_and_linked_to_it(make_app, spans):
    app = make_app(five_tasks, {"deferred_task.budget_seconds": "5"})

    assert app.get("/things/1").text == "ok"

    found = by_name(spans())
    request_span, run = found["/things/{id}"], found["deferred_tasks"]
    assert request_span.kind is SpanKind.SERVER
    assert parent_id(run) == request_span.context.span_id
    assert run.context.trace_id == request_span.context.trace_id
    assert [link.context.span_id for link in run.links] == [request_span.context.span_id]
    assert request_span.end_time is not None and run.start_time is not None
    assert request_span.end_time <= run.start_time, "the request span ended before the run began"
    assert run.attributes is not None
    assert attrs(run)["deferred_task.trigger"] == "close"
    assert attrs(run)["deferred_task.tasks"] == 5
    assert attrs(run)["deferred_task.executed"] == 2
    assert attrs(run)["deferred_task.failed"] == 1
    assert attrs(run)["deferred_task.skipped"] == 1
    assert attrs(run)["deferred_task.forgotten"] == 1
    assert attrs(run)["deferred_task.budget_seconds"] == 5.0
    assert attrs(run)["deferred_task.wait_seconds"] >= 0
    assert run.status.status_code is StatusCode.ERROR


def test_one_child_span_per_task_with_its_outcome_cost_priority_and_timing(make_app, spans):
    app = make_app(five_tasks, {"deferred_task.budget_seconds": "5"})

    app.get("/things/1")

    found = by_name(spans())
    run = found["deferred_tasks"]
    tasks = [span for span in spans() if span.name.startswith("deferred_task ")]
    assert [span.name for span in tasks] == [
        "deferred_task cancelled", "deferred_task meta.purchase", "deferred_task crm.sync",
        "deferred_task cheap.after", "deferred_task too.costly",
    ]
    for span in tasks:
        assert parent_id(span) == run.context.span_id
        assert attrs(span)["deferred_task.trigger"] == "close"
    of = {span.name.removeprefix("deferred_task "): dict(span.attributes or {}) for span in tasks}
    assert of["meta.purchase"]["deferred_task.outcome"] == "executed"
    assert of["meta.purchase"]["deferred_task.priority"] == PRIORITY_CRITICAL
    assert of["meta.purchase"]["deferred_task.max_cost_seconds"] == 0.5
    assert of["meta.purchase"]["deferred_task.duration_seconds"] >= 0.02
    assert of["crm.sync"]["deferred_task.outcome"] == "failed"
    assert of["cheap.after"]["deferred_task.outcome"] == "executed"
    assert of["too.costly"]["deferred_task.outcome"] == "skipped"
    assert 4.9 < of["too.costly"]["deferred_task.budget_left_seconds"] < 5.0
    assert "deferred_task.duration_seconds" not in of["too.costly"]
    assert of["cancelled"]["deferred_task.outcome"] == "forgotten"
    # Each task waited at least as long as the one before it: they ran one after the other.
    waits = [of[name]["deferred_task.wait_seconds"]
             for name in ("meta.purchase", "crm.sync", "cheap.after")]
    assert waits == sorted(waits) and waits[1] - waits[0] >= 0.02
    # Sequential: each task starts where the one before it ended; skipped and forgotten take no time.
    purchase, crm, cheap, costly = (found[f"deferred_task {n}"] for n in
                                    ("meta.purchase", "crm.sync", "cheap.after", "too.costly"))
    assert purchase.start_time == run.start_time
    assert crm.start_time == purchase.end_time and cheap.start_time == crm.end_time
    assert costly.start_time == costly.end_time == cheap.end_time
    assert purchase.end_time is not None and purchase.start_time is not None
    assert purchase.end_time - purchase.start_time >= 20_000_000  # 20 ms in ns


def test_a_failed_task_s_span_records_its_exception(make_app, spans):
    app = make_app(five_tasks)

    app.get("/things/1")

    failed = by_name(spans())["deferred_task crm.sync"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ValueError"
    [event] = failed.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert attrs(event)["exception.type"] == "ValueError"
    assert attrs(event)["exception.message"] == "the CRM said no"
    assert "boom" in str(attrs(event)["exception.stacktrace"])


def test_tasks_of_a_failed_request_are_discarded_spans(make_app, spans):
    def failing(request: Request) -> Response:
        request.deferred_task.defer(lambda: None, max_cost_seconds=1, name="meta.purchase")
        request.deferred_task.defer(lambda: None, max_cost_seconds=1, name="audit.log", always=True)
        return Response("nope", status=400)

    app = make_app(failing)
    app.get("/things/1", status=400)

    found = by_name(spans())
    assert attrs(found["deferred_task meta.purchase"])["deferred_task.outcome"] == "discarded"
    assert attrs(found["deferred_task audit.log"])["deferred_task.outcome"] == "executed"
    request_span = found["/things/{id}"]
    assert parent_id(found["deferred_tasks"]) == request_span.context.span_id


def test_a_hand_off_run_says_thread_and_still_belongs_to_the_request_trace(make_app, spans):
    done = threading.Event()

    def view(request: Request) -> Response:
        request.deferred_task.defer(done.set, max_cost_seconds=1, name="a.task")
        return Response("ok")

    app = make_app(view, {"deferred_task.strategy": "thread"})
    app.get("/things/1")
    assert done.wait(5)
    deadline = time.monotonic() + 5
    while "deferred_tasks" not in by_name(spans()) and time.monotonic() < deadline:
        time.sleep(0.01)

    found = by_name(spans())
    run, request_span = found["deferred_tasks"], found["/things/{id}"]
    assert attrs(run)["deferred_task.trigger"] == "thread"
    assert attrs(found["deferred_task a.task"])["deferred_task.trigger"] == "thread"
    assert parent_id(run) == request_span.context.span_id


def test_without_the_pyramid_instrumentation_the_span_current_around_the_app_is_the_parent(
    make_app, spans
):
    """As under a WSGI middleware: its server span is current while the app runs."""
    app = make_app(five_tasks, instrument=False)
    tracer = trace.get_tracer("test")

    with tracer.start_as_current_span("server") as server:
        app.get("/things/1")

    run = by_name(spans())["deferred_tasks"]
    assert parent_id(run) == server.get_span_context().span_id
    assert run.links[0].context.span_id == server.get_span_context().span_id


def test_a_run_outside_any_trace_is_a_root_span_without_link(make_app, spans):
    app = make_app(five_tasks, instrument=False)

    app.get("/things/1")

    run = by_name(spans())["deferred_tasks"]
    assert run.parent is None and not run.links


def test_no_tracer_provider_configured_means_no_spans_and_no_tracer(make_app, spans, monkeypatch):
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    observer = TracingObserver()
    assert observer.tracer() is None
    app = make_app(five_tasks)

    app.get("/things/1")

    assert spans() == []


def test_requests_that_defer_nothing_make_no_run_span(make_app, spans):
    app = make_app(lambda request: Response("plain"))

    app.get("/things/1")

    assert [span.name for span in spans()] == ["/things/{id}"]


def test_without_opentelemetry_the_include_registers_nothing(monkeypatch):
    monkeypatch.setattr(pyramid_deferred.tracing, "available", lambda: False)
    config = Configurator()
    config.include("pyramid_deferred")
    config.include("pyramid_deferred.tracing")
    router = config.make_wsgi_app()
    try:
        assert get_hook(router.registry).observers == ()
        tweens = [name for name, _ in router.registry.queryUtility(ITweens).implicit()]
        assert TRACING_TWEEN not in tweens
    finally:
        get_hook(router.registry).worker.shutdown(grace_seconds=0)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_times_come_from_the_batch_s_readings_and_the_reported_durations(spans, monkeypatch):
    """Response left at 100.0 s, run began at 100.5 s, tasks of 0.25 s and 0.125 s; read at 101.0 s."""
    clock = FakeClock(100.0)
    batch = RequestBatch(DeferredTaskRunner(), clock=clock, request_id="rid-1")
    batch.scheduled_at, batch.run_started_at, batch.trigger = 100.0, 100.5, Trigger.UWSGI
    error = RuntimeError("down")
    report = RunReport((
        TaskResult("a", 100, 1.0, Outcome.EXECUTED, 0.25),
        TaskResult("b", 50, 1.0, Outcome.SKIPPED),
        TaskResult("c", 50, 0.5, Outcome.FAILED, 0.125, error),
        TaskResult("d", 10, 1.0, Outcome.DISCARDED),
    ), elapsed_seconds=0.375, budget_seconds=1.2)
    clock.now = 101.0
    monkeypatch.setattr(time, "time_ns", lambda: 2_000_000_000_000_000_000)
    parent = trace.get_tracer("test").start_span("request", context=Context())
    parent.end()
    batch.notes[TRACE_PARENT] = parent.get_span_context()

    record_run(trace.get_tracer_provider().get_tracer("pyramid_deferred"), batch, report)

    found = by_name(spans())
    base = 2_000_000_000_000_000_000 - 1_000_000_000  # the epoch ns of reading 100.0
    ms = 1_000_000
    run = found["deferred_tasks"]
    assert (run.start_time, run.end_time) == (base + 500 * ms, base + 875 * ms)
    assert attrs(run)["deferred_task.trigger"] == "uwsgi"
    assert attrs(run)["deferred_task.request_id"] == "rid-1"
    assert attrs(run)["deferred_task.wait_seconds"] == 0.5
    a, b, c, d = (found[f"deferred_task {n}"] for n in "abcd")
    assert (a.start_time, a.end_time) == (base + 500 * ms, base + 750 * ms)
    assert (b.start_time, b.end_time) == (base + 750 * ms, base + 750 * ms)
    assert attrs(b)["deferred_task.budget_left_seconds"] == pytest.approx(0.95)
    assert (c.start_time, c.end_time) == (base + 750 * ms, base + 875 * ms)
    assert attrs(c)["deferred_task.wait_seconds"] == 0.75
    assert attrs(c.events[0])["exception.message"] == "down"
    assert (d.start_time, d.end_time) == (base + 875 * ms, base + 875 * ms)
    assert attrs(d)["deferred_task.outcome"] == "discarded"
    assert parent_id(run) == parent.get_span_context().span_id

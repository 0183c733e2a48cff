"""The spans themselves (imports ``opentelemetry``: only loaded when it is installed).

Times: the batch holds ``clock()`` readings (monotonic) of when the response left the app
(``scheduled_at``) and when the run began (``run_started_at``); the report holds each task's
measured duration, in run order, and tasks that did not run took no time. So a task started at
the run's start plus the durations of the tasks before it. One ``(time.time_ns(), clock())`` pair,
read when the observer is called, turns readings into the epoch nanoseconds spans want.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    ProxyTracerProvider,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
)
from pyramid.config import Configurator
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response
from pyramid.tweens import EXCVIEW

from pyramid_deferred.batch import BATCH_ATTR, RequestBatch
from pyramid_deferred.core import Outcome, RunReport
from pyramid_deferred.tracing.names import OTEL_PYRAMID_TWEEN, TRACE_PARENT, TRACING_TWEEN
from pyramid_deferred.tween import DEFERRED_TASK_TWEEN

TRACER_NAME = "pyramid_deferred"
RUN_SPAN = "deferred_tasks"
TASK_SPAN_PREFIX = "deferred_task "
NS = 1_000_000_000

Handler = Callable[[Request], Response]


def include(config: Configurator) -> None:
    # Under the OpenTelemetry tween (the request span is still current on the way out) and over
    # exception views; under the add-on's tween, which creates the batch on the first defer().
    config.add_tween(TRACING_TWEEN, under=(OTEL_PYRAMID_TWEEN, DEFERRED_TASK_TWEEN), over=EXCVIEW)
    config.add_deferred_task_observer(TracingObserver())


def request_span_tween_factory(handler: Handler, registry: Registry) -> Handler:
    """Notes the request's span on the batch of a request that deferred something.

    The run starts after the response has left, when opentelemetry-instrumentation-pyramid has
    ended and detached the request's span: the context the batch copied then no longer holds it.
    """

    def request_span_tween(request: Request) -> Response:
        try:
            return handler(request)
        finally:
            batch: RequestBatch | None = getattr(request, BATCH_ATTR, None)
            if batch is not None:
                span_context = trace.get_current_span().get_span_context()
                if span_context.is_valid:
                    batch.notes[TRACE_PARENT] = span_context

    return request_span_tween


def configured_provider(provider: TracerProvider | None = None) -> TracerProvider | None:
    """The tracer provider to use, or None while the application has configured none."""
    provider = provider or trace.get_tracer_provider()
    return None if isinstance(provider, ProxyTracerProvider) else provider


class TracingObserver:
    """The report observer that turns each run into spans (``config.add_deferred_task_observer``)."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        """``tracer_provider``: None (the default) uses the global one, once it is set."""
        self.tracer_provider = tracer_provider
        self._tracer: tuple[TracerProvider, Tracer] | None = None

    def tracer(self) -> Tracer | None:
        provider = configured_provider(self.tracer_provider)
        if provider is None:
            return None
        cached = self._tracer
        if cached is None or cached[0] is not provider:
            cached = self._tracer = (provider, provider.get_tracer(TRACER_NAME))
        return cached[1]

    def __call__(self, batch: RequestBatch, report: RunReport) -> None:
        if not report.results and not report.refused:
            return
        tracer = self.tracer()
        if tracer is not None:
            record_run(tracer, batch, report)

    def __repr__(self) -> str:
        return "TracingObserver()"


def request_span_context(batch: RequestBatch) -> SpanContext:
    """The request's span: noted by the tween, else the span current where the run started (an
    app traced by a WSGI middleware, whose server span outlives the app; disabled mode)."""
    noted = batch.notes.get(TRACE_PARENT)
    if isinstance(noted, SpanContext):
        return noted
    return trace.get_current_span().get_span_context()


def record_run(tracer: Tracer, batch: RequestBatch, report: RunReport) -> None:
    """One span for the run, one child span per task, with explicit start and end times."""
    wall_ns, now = time.time_ns(), batch.clock()

    def epoch_ns(reading: float) -> int:
        return wall_ns - round((now - reading) * NS)

    parent = request_span_context(batch)
    if parent.is_valid:
        parent_context = trace.set_span_in_context(NonRecordingSpan(parent))
        links = [Link(parent, {"deferred_task.link": "request"})]
    else:
        parent_context, links = otel_context.Context(), []
    trigger = batch.trigger.name.lower()
    scheduled = batch.scheduled_at
    run_start = batch.run_started_at if batch.run_started_at is not None else now
    run_end = run_start + report.elapsed_seconds
    counts = dict.fromkeys(Outcome, 0)
    for result in report.results:
        counts[result.outcome] += 1
    attributes: dict[str, str | int | float] = {
        "deferred_task.request_id": batch.request_id,
        "deferred_task.trigger": trigger,
        "deferred_task.tasks": len(report.results),
        "deferred_task.refused": report.refused,
        "deferred_task.elapsed_seconds": report.elapsed_seconds,
        **{f"deferred_task.{outcome.value}": count for outcome, count in counts.items()},
    }
    if report.budget_seconds is not None:
        attributes["deferred_task.budget_seconds"] = report.budget_seconds
    if scheduled is not None:
        attributes["deferred_task.wait_seconds"] = max(run_start - scheduled, 0.0)
    run_span = tracer.start_span(
        RUN_SPAN, context=parent_context, kind=SpanKind.INTERNAL, links=links,
        start_time=epoch_ns(run_start), attributes=attributes,
    )
    run_context = trace.set_span_in_context(run_span)
    cursor = run_start
    for result in report.results:
        start = cursor
        duration = result.duration_seconds or 0.0
        end = start + duration
        task_attributes: dict[str, str | int | float] = {
            "deferred_task.name": result.name,
            "deferred_task.priority": result.priority,
            "deferred_task.max_cost_seconds": result.max_cost_seconds,
            "deferred_task.outcome": result.outcome.value,
            "deferred_task.trigger": trigger,
        }
        if result.duration_seconds is not None:
            task_attributes["deferred_task.duration_seconds"] = result.duration_seconds
        if scheduled is not None:
            task_attributes["deferred_task.wait_seconds"] = max(start - scheduled, 0.0)
        if result.outcome is Outcome.SKIPPED and report.budget_seconds is not None:
            task_attributes["deferred_task.budget_left_seconds"] = max(
                report.budget_seconds - (start - run_start), 0.0
            )
        span = tracer.start_span(
            TASK_SPAN_PREFIX + result.name, context=run_context, kind=SpanKind.INTERNAL,
            start_time=epoch_ns(start), attributes=task_attributes,
        )
        if result.outcome is Outcome.FAILED:
            error = result.error
            if error is not None:
                span.record_exception(error, timestamp=epoch_ns(end), escaped=False)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__ if error else "failed"))
        span.end(end_time=epoch_ns(end))
        if result.outcome in (Outcome.EXECUTED, Outcome.FAILED):
            cursor = end
    if counts[Outcome.FAILED]:
        run_span.set_status(Status(StatusCode.ERROR, f"{counts[Outcome.FAILED]} task(s) failed"))
    run_span.end(end_time=epoch_ns(max(run_end, cursor)))

"""The names the tracing package and its spans module share (without importing OpenTelemetry)."""

from __future__ import annotations

TRACE_PARENT = "otel.request_span"
"""The key of ``RequestBatch.notes`` holding the request span's ``SpanContext``."""
TRACING_TWEEN = "pyramid_deferred.tracing.spans.request_span_tween_factory"
OTEL_PYRAMID_TWEEN = "opentelemetry.instrumentation.pyramid.trace_tween_factory"
"""opentelemetry-instrumentation-pyramid's tween: it ends the request span on its way out."""

"""OpenTelemetry spans of what ran after the response, opt-in:
``config.include("pyramid_deferred.tracing")`` after ``config.include("pyramid_deferred")``
(and ``pip install pyramid-deferred[otel]``).

Each request's run is a span in the request's trace, though the request's span has ended by then
(a child of it, and linked to it), with one child span per task: its name, priority, declared
cost, outcome, duration, the wait since the response left the app, and the trigger. The spans
are built after the run from the clock readings the batch and the report already hold, so the
runner's loop is unchanged.

Inert unless ``opentelemetry-api`` is installed (without it the include registers nothing) and
the application configured a tracer provider (``trace.set_tracer_provider``): until then each
run costs one ``isinstance`` check, and each request one attribute lookup.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from pyramid_deferred.core.log import get_logger
from pyramid_deferred.tracing.names import OTEL_PYRAMID_TWEEN, TRACE_PARENT, TRACING_TWEEN

if TYPE_CHECKING:
    from pyramid.config import Configurator

log = get_logger(__name__)



def available() -> bool:
    """Is ``opentelemetry-api`` installed?"""
    return importlib.util.find_spec("opentelemetry.trace") is not None


def includeme(config: Configurator) -> None:
    if not available():
        log.info(
            "pyramid_deferred.tracing: opentelemetry-api is not installed, no spans "
            "(pip install pyramid-deferred[otel])"
        )
        return
    from pyramid_deferred.tracing.spans import include

    include(config)


__all__ = ["OTEL_PYRAMID_TWEEN", "TRACE_PARENT", "TRACING_TWEEN", "available", "includeme"]

"""How this app plugs into Pyramid: the pyramid_deferred add-on, its tracing (spans once a tracer
provider is set), its metrics and its live dashboard when enabled, the request's Matomo tracker,
and closing the integrations' clients at exit.

``config.include("hooks")`` after ``config.registry.container`` is set (app/factory.py).
"""

from __future__ import annotations

import atexit
from typing import Any

from pyramid.config import Configurator
from pyramid.events import NewRequest

from app.durable_tasks import CURRENT_CONTAINER


def includeme(config: Configurator) -> None:
    container: Any = config.registry.container
    # Registered before the add-on's drain: atexit calls the last registered first, so the
    # hand-off worker's last tasks still have their HTTP clients.
    atexit.register(container.integration_clients.shutdown)
    config.include("pyramid_deferred")
    # Inert without opentelemetry-api or until a tracer provider is set (docs/observability.md).
    config.include("pyramid_deferred.tracing")
    if container.config.app.metrics_enabled():
        config.include("pyramid_deferred.metrics")
    if container.config.app.dashboard_enabled():
        config.include("pyramid_deferred.dashboard")
        config.add_deferred_dashboard_panel("Circuit breakers", lambda request: breaker_states(container))
    config.add_subscriber(start_request_scope, NewRequest)
    # Durable tasks (the revenue events) with a service whose breaker is open spill to Celery at
    # once, and Celery waits for the breaker's reset timeout (docs/durable.md).
    config.set_deferred_task_service_check(lambda service: container.breaker_store().retry_after(service))


def start_request_scope(event: NewRequest) -> None:
    """Forget the previous request's Matomo tracker (and any test override's): the container's
    ``matomo_tracker`` is per context, and server threads, with their context, are reused."""
    container = getattr(event.request.registry, "container", None)
    if container is None:
        return
    CURRENT_CONTAINER.set(container)  # the revenue events' durable tasks find their services here
    provider: Any = container.matomo_tracker
    for candidate in (provider, *provider.overridden):
        reset = getattr(candidate, "reset", None)
        if reset is not None:
            reset()


def breaker_states(container: Any) -> list[dict[str, object]]:
    """The dashboard's panel: each service's circuit breaker, once the service was used."""
    rows: list[dict[str, object]] = container.breaker_store().states()
    return rows

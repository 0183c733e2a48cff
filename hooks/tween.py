"""When each request's deferred tasks run, relative to the response reaching the client.

- request start (tween): a fresh runner for this request;
- response leaves Pyramid (NewResponse, the last point after response callbacks): the run is
  attached to the body's ``close()``, which the server calls after writing the body;
- disabled mode: run inline in the tween, before the response is returned;
- finished callback (before the body is written): the safety net for requests whose response
  never reached NewResponse (an exception escaped Pyramid), so no task leaks into the next request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyramid.events import NewResponse
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response

from app.deferred_task import DeferredTaskRunner
from hooks.batch import RequestBatch
from hooks.closing import wrap_app_iter

BATCH_ATTR = "deferred_task_batch"
FAILED_STATUS = 400

Handler = Callable[[Request], Response]


def fresh_runner(container: Any) -> DeferredTaskRunner | None:
    """Reset the per-request singleton (and any override of it) and return this request's runner."""
    provider = getattr(container, "deferred_task", None)
    if provider is None:
        return None
    for candidate in (provider, *getattr(provider, "overridden", ())):
        reset = getattr(candidate, "reset", None)
        if reset is not None:
            reset()
    runner = provider()
    return runner if isinstance(runner, DeferredTaskRunner) else None


def deferred_task_tween_factory(handler: Handler, registry: Registry) -> Handler:
    def deferred_task_tween(request: Request) -> Response:
        container = getattr(request.registry, "container", None)
        runner = fresh_runner(container) if container is not None else None
        if runner is None:
            return handler(request)
        batch = RequestBatch(runner)
        setattr(request, BATCH_ATTR, batch)
        request.add_finished_callback(_safety_net)
        try:
            response = handler(request)
        except BaseException:
            batch.request_failed = True
            raise
        if not runner.enabled:
            batch.request_failed = response.status_int >= FAILED_STATUS
            batch.run_once()
        return response

    return deferred_task_tween


def attach_run_to_body_close(event: NewResponse) -> None:
    """Subscriber: the run happens when the server closes the body, after sending it."""
    batch: RequestBatch | None = getattr(event.request, BATCH_ATTR, None)
    if batch is None or batch.scheduled or not batch.runner.has_tasks():
        return
    batch.request_failed = event.response.status_int >= FAILED_STATUS
    batch.scheduled = True
    wrap_app_iter(event.response, batch.run_once)


def _safety_net(request: Request) -> None:
    batch: RequestBatch | None = getattr(request, BATCH_ATTR, None)
    if batch is None or batch.scheduled:
        return
    batch.run_once()

"""When each request's deferred tasks run, relative to the response reaching the client.

- request start (tween): a fresh runner for this request, and the time the request started
  (the hard limit counts from there);
- response leaves Pyramid (NewResponse, the last point after response callbacks): the batch is
  attached to a trigger that fires after the client has the response (``hooks.dispatch``);
- disabled mode: run inline in the tween, before the response is returned;
- finished callback (before the body is written): the safety net for requests whose response
  never reached NewResponse (an exception escaped Pyramid): the batch goes to a trigger that
  fires after the server's error response, so no task leaks into the next request.
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
from hooks.observers import registered_observers
from hooks.request_id import new_request_id

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
    observers = registered_observers(registry)

    def deferred_task_tween(request: Request) -> Response:
        container = getattr(request.registry, "container", None)
        runner = fresh_runner(container) if container is not None else None
        if container is None or runner is None:
            return handler(request)
        hard_limit = container.config.deferred_task.hard_limit_seconds() or 0.0
        rid = getattr(request, "request_id", None)
        batch = RequestBatch(
            runner, hard_limit_seconds=hard_limit, clock=container.clock(),
            request_id=rid or new_request_id(), observers=observers,
        )
        setattr(request, BATCH_ATTR, batch)
        # A plain attribute, not a reified request property: those make Pyramid build a request
        # subclass for every request (~12 µs measured, see BENCHMARKS.md).
        request.deferred_task = runner
        request.add_finished_callback(_safety_net)
        try:
            response = handler(request)
        except BaseException:
            batch.request_failed = True
            raise
        if not runner.enabled:
            batch.request_failed = response.status_int >= FAILED_STATUS
            batch.trigger = "the tween (disabled mode: before the response)"
            batch.run_once()
        return response

    return deferred_task_tween


def attach_run_after_response(event: NewResponse) -> None:
    """Subscriber: hand the batch to the trigger that fires once the client has the response."""
    request, response = event.request, event.response
    batch: RequestBatch | None = getattr(request, BATCH_ATTR, None)
    if batch is None or batch.scheduled or not batch.runner.has_tasks():
        return
    closed_early = is_unsatisfiable_range(request, response)
    batch.request_failed = closed_early or response.status_int >= FAILED_STATUS
    request.registry.container.deferred_task_dispatcher().schedule(
        batch, request.environ, response, closed_early=closed_early
    )


def is_unsatisfiable_range(request: Request, response: Response) -> bool:
    """WebOb will answer 416 and close the body itself, before the server sends anything.

    Mirrors the condition in ``webob.Response.conditional_response_app``.
    """
    if not response.conditional_response or request.range is None:
        return False
    if request.method not in ("GET", "HEAD") or response.status_int != 200:
        return False
    if response.content_length is None or response.content_range is not None:
        return False
    if response not in request.if_range:
        return False
    return request.range.content_range(response.content_length) is None


def _safety_net(request: Request) -> None:
    """No response reached NewResponse (an exception escaped Pyramid): hand the batch off, so
    that its ``always`` tasks run after the server's error response, not before it."""
    batch: RequestBatch | None = getattr(request, BATCH_ATTR, None)
    if batch is None or batch.scheduled:
        return
    if not batch.runner.enabled or not batch.runner.has_tasks():
        batch.trigger = "the finished callback"
        batch.run_once()
        return
    request.registry.container.deferred_task_dispatcher().schedule_without_response(batch)

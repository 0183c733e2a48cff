"""When each request's deferred tasks run, relative to the response reaching the client.

- request start (tween): a fresh runner for this request (``request.deferred_task``, and
  :func:`pyramid_deferred.current_runner` while the request is handled), and the time the
  request started (the hard limit counts from there);
- response leaves Pyramid (``NewResponse``, the last point after response callbacks): the batch
  is attached to a trigger that fires after the client has the response (``dispatch``);
- disabled mode: run inline in the tween, before the response is returned;
- an attempt that pyramid_retry will retry: its tasks are discarded there and then (the client
  never sees that attempt's response);
- finished callback (before the body is written): the safety net for requests whose response
  never reached ``NewResponse`` (an exception escaped Pyramid): the batch goes to a trigger that
  fires after the server's error response, so no task leaks into the next request.
"""

from __future__ import annotations

from collections.abc import Callable

from pyramid.events import NewResponse
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response

from pyramid_deferred.batch import BATCH_ATTR, RequestBatch, Trigger
from pyramid_deferred.hook import get_hook
from pyramid_deferred.request_id import echo_request_id, new_request_id
from pyramid_deferred.scope import _current
from pyramid_deferred.transactions import RETRIED, is_retried_attempt

DEFERRED_TASK_TWEEN = "pyramid_deferred.tween.deferred_task_tween_factory"
FAILED_STATUS = 400

Handler = Callable[[Request], Response]


def deferred_task_tween_factory(handler: Handler, registry: Registry) -> Handler:
    hook = get_hook(registry)

    def deferred_task_tween(request: Request) -> Response:
        runner = hook.new_runner()
        batch = RequestBatch(
            runner, hard_limit_seconds=hook.hard_limit_seconds, clock=hook.clock,
            request_id=getattr(request, "request_id", None) or new_request_id(), observers=hook.observers,
        )
        # Plain attributes, not reified request properties: those make Pyramid build a request
        # subclass for every request (~12 µs measured, see the benchmarks).
        request.deferred_task_batch = batch
        request.deferred_task = runner
        request.add_finished_callback(_safety_net)
        token = _current.set(runner)
        try:
            response = handler(request)
        except BaseException as error:
            batch.request_failed = True
            if is_retried_attempt(request, error):
                batch.discard_once(RETRIED)
            raise
        finally:
            _current.reset(token)
        if is_retried_attempt(request, getattr(request, "exception", None)):
            batch.discard_once(RETRIED)
        elif not runner.enabled:
            batch.request_failed = is_failed(batch, response)
            batch.run_once(Trigger.INLINE_DISABLED)
        return response

    return deferred_task_tween


def is_failed(batch: RequestBatch, response: Response) -> bool:
    """An error status, or a pyramid_tm transaction that was doomed or aborted."""
    return response.status_int >= FAILED_STATUS or batch.transaction_committed is False


def on_new_response(event: NewResponse) -> None:
    """Subscriber: echo the request id; hand the batch to the trigger that fires once the client
    has the response. (One subscriber for both: each ``NewResponse`` subscriber costs every request.)"""
    request, response = event.request, event.response
    echo_request_id(event)
    batch: RequestBatch | None = getattr(request, BATCH_ATTR, None)
    if batch is None or batch.scheduled or batch.decided or not batch.runner.has_tasks():
        return
    closed_early = is_unsatisfiable_range(request, response)
    batch.request_failed = closed_early or is_failed(batch, response)
    dispatcher = get_hook(request.registry).dispatcher
    dispatcher.schedule(batch, request.environ, response, closed_early=closed_early)


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
    if batch is None or batch.scheduled or batch.decided:
        return
    if not batch.runner.enabled or not batch.runner.has_tasks():
        batch.run_once(Trigger.FINISHED_CALLBACK)
        return
    get_hook(request.registry).dispatcher.schedule_without_response(batch)

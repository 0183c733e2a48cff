"""When each request's deferred tasks run, relative to the response reaching the client.

One tween, and nothing else on requests that defer nothing (most of them):

- request start: the request id, and a runner for this request (``request.deferred_task``, and
  :func:`pyramid_deferred.current_runner` while the request is handled);
- first ``defer()`` of the request: its :class:`RequestBatch` (the hard limit counts from the
  request's start), a finished callback, and, under pyramid_tm, an after-commit hook;
- finished callback: Pyramid calls it after response callbacks and ``NewResponse``, just before
  it returns the response to the server, so it sees the final body: the batch is attached to a
  trigger that fires once the client has the response (``dispatch``); when an exception escaped
  Pyramid there is no response, and the batch goes to a trigger that fires after the server's
  error page, so no task leaks into the next request;
- an attempt that pyramid_retry will retry: its tasks are discarded in the tween (the client
  never sees that attempt's response);
- disabled mode: the tasks run inline in the tween, before the response is returned.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response
from pyramid.threadlocal import get_current_request

from pyramid_deferred.batch import BATCH_ATTR, RequestBatch, Trigger
from pyramid_deferred.core import DeferredTaskRunner
from pyramid_deferred.hook import DeferredTaskHook, get_hook
from pyramid_deferred.request_id import REQUEST_ID_HEADER, _current_request_id, request_id_of
from pyramid_deferred.scope import _current
from pyramid_deferred.transactions import RETRIED, is_retried_attempt, watch_transaction

DEFERRED_TASK_TWEEN = "pyramid_deferred.tween.deferred_task_tween_factory"
FAILED_STATUS = 400

Handler = Callable[[Request], Response]


class PendingRequest:
    """What the tween knows of one request, for its first ``defer()`` and its finished callback.

    It holds the request weakly: the request holds the runner, which holds this object's
    ``attach`` until the first ``defer()``; a strong reference would make a cycle, and every
    request that defers nothing would wait for the garbage collector (measured: +3 µs each).
    """

    __slots__ = ("batch", "hook", "request_ref", "response")

    def __init__(self, hook: DeferredTaskHook, request: Request) -> None:
        self.hook = hook
        self.request_ref = weakref.ref(request)
        self.response: Response | None = None
        self.batch: RequestBatch | None = None

    def attach(self, runner: DeferredTaskRunner) -> None:
        """The runner's first task: from now on this request has a batch to run after it.

        Pyramid's request context ends once its finished callbacks have run: a first task
        deferred after that (from a thread the view started, or while the server iterates the
        body) could never run, so it is refused, loudly."""
        request, hook = self.request_ref(), self.hook
        if request is None or (self.response is not None and get_current_request() is not request):
            runner.close()
            raise RuntimeError(
                "this request is over: a task deferred now would never run. Defer while the "
                "request is handled, or use `with pyramid_deferred.deferred_scope():`"
            )
        self.batch = batch = RequestBatch(
            runner, hard_limit_seconds=hook.hard_limit_seconds, clock=hook.clock,
            started=getattr(request, "deferred_task_started", 0.0),
            request_id=getattr(request, "request_id", None) or request_id_of({}),
            observers=hook.observers, watchdog=hook.watchdog, spill_over=hook.spill_over, live=hook.live,
        )
        setattr(request, BATCH_ATTR, batch)
        watch_transaction(request, batch)
        request.add_finished_callback(self.after_request)

    def after_request(self, request: Request) -> None:
        """Finished callback: schedule the batch on the final response, or without one."""
        batch = self.batch
        if batch is None or batch.decided or batch.scheduled:
            return
        response = self.response
        dispatcher = self.hook.dispatcher
        if response is None:  # an exception escaped Pyramid: there is no body to wrap
            batch.request_failed = True
            if not batch.runner.enabled or not batch.runner.has_tasks():
                batch.run_once(Trigger.FINISHED_CALLBACK)
            else:
                dispatcher.schedule_without_response(batch)
            return
        if not batch.runner.has_tasks():
            batch.run_once(Trigger.FINISHED_CALLBACK)  # only forgotten ones: report them
            return
        closed_early = is_unsatisfiable_range(request, response)
        batch.request_failed = closed_early or is_failed(batch, response)
        dispatcher.schedule(batch, request.environ, response, closed_early=closed_early)


def deferred_task_tween_factory(handler: Handler, registry: Registry) -> Handler:
    hook = get_hook(registry)
    new_runner = hook.new_runner
    with_request_id = hook.settings.request_id
    trust_header = hook.settings.trust_request_id_header

    def deferred_task_tween(request: Request) -> Response:
        rid = None
        if with_request_id:
            request.request_id = rid = request_id_of(request.environ, trust_header=trust_header)
            rid_token = _current_request_id.set(rid)
        if hook.hard_limit_seconds:
            request.deferred_task_started = hook.clock()  # the hook's clock now: a test may set it
        # Plain attributes, not reified request properties: those make Pyramid build a request
        # subclass for every request (~17 µs measured, see the benchmarks).
        request.deferred_task = runner = new_runner()
        pending = PendingRequest(hook, request)
        runner.on_first_task = pending.attach
        token = _current.set(runner)
        try:
            response = handler(request)
        except BaseException as error:
            if pending.batch is not None:
                pending.batch.request_failed = True
                if is_retried_attempt(request, error):
                    pending.batch.discard_once(RETRIED)
            raise
        finally:
            _current.reset(token)
            if rid is not None:
                _current_request_id.reset(rid_token)
        pending.response = response
        if rid is not None:
            # Appended, not set through WebOb's headers (~0.6 µs): the add-on owns this header.
            response.headerlist.append((REQUEST_ID_HEADER, rid))
        batch = pending.batch
        if batch is not None:
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

"""When each request's deferred tasks run, relative to the response reaching the client.

One tween, and on a request that defers nothing it does the least it can: a runner (one object,
its fields at their class defaults), the request id, and the id echoed in the response. The rest
comes with the request's first ``defer()`` (:meth:`DeferredTaskHook.attach`):

- its :class:`RequestBatch` (the hard limit counts from the request's start), Pyramid's finished
  callback (:meth:`BatchDispatcher.finish_request`), and, under pyramid_tm, an after-commit hook;
- the finished callback runs after response callbacks and ``NewResponse``, just before Pyramid
  returns the response to the server, so it sees the final body: the batch is attached to a
  trigger that fires once the client has the response (:mod:`pyramid_deferred.dispatch`); when
  an exception escaped Pyramid there is no response, and the batch goes to a trigger that fires
  after the server's error page, so no task leaks into the next request;
- an attempt that pyramid_retry will retry: its tasks are discarded in the tween (the client
  never sees that attempt's response);
- disabled mode: the tasks run inline in the tween, before the response is returned.
"""

from __future__ import annotations

from collections.abc import Callable

from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response

from pyramid_deferred.batch import BATCH_ATTR, Trigger
from pyramid_deferred.dispatch import is_failed
from pyramid_deferred.hook import RESPONSE_ATTR, get_hook
from pyramid_deferred.request_id import REQUEST_ID_ENVIRON_KEY, REQUEST_ID_HEADER, is_sane_request_id
from pyramid_deferred.transactions import RETRIED, is_retried_attempt

DEFERRED_TASK_TWEEN = "pyramid_deferred.tween.deferred_task_tween_factory"

Handler = Callable[[Request], Response]


def deferred_task_tween_factory(handler: Handler, registry: Registry) -> Handler:
    hook = get_hook(registry)
    new_runner = hook.new_runner
    new_request_id = hook.new_request_id
    with_request_id = hook.settings.request_id
    trust_header = hook.settings.trust_request_id_header

    def deferred_task_tween(request: Request) -> Response:
        # The router applied the add-on's request extension (hook.RequestRunner): the runner is
        # there, its owner the request; an app that swapped the router gets one here.
        runner = request.__dict__.get("deferred_task")
        if runner is None:
            request.deferred_task = runner = new_runner()
            runner.owner = request
        rid = None
        if with_request_id:
            incoming = request.environ.get(REQUEST_ID_ENVIRON_KEY) if trust_header else None
            request.request_id = rid = (
                incoming if incoming is not None and is_sane_request_id(incoming) else new_request_id()
            )
        if hook.hard_limit_seconds:
            request.deferred_task_started = hook.clock()  # the hook's clock now: a test may set it
        try:
            response = handler(request)
        except BaseException as error:
            batch = request.__dict__.get(BATCH_ATTR)
            if batch is not None:
                batch.request_failed = True
                if is_retried_attempt(request, error):
                    batch.discard_once(RETRIED)
            raise
        finally:
            runner.owner = None  # no reference cycle: a request that deferred nothing is freed at once
        if rid is not None:
            # Appended, not set through WebOb's headers (~0.6 µs): the add-on owns this header.
            response.headerlist.append((REQUEST_ID_HEADER, rid))
        batch = request.__dict__.get(BATCH_ATTR)
        if batch is None:
            # A first defer() may still come from a response callback or a NewResponse subscriber.
            request.__dict__[RESPONSE_ATTR] = response
            return response
        batch.response = response
        if is_retried_attempt(request, getattr(request, "exception", None)):
            batch.discard_once(RETRIED)
        elif not runner.enabled:
            batch.request_failed = is_failed(batch, response)
            batch.run_once(Trigger.INLINE_DISABLED)
        return response

    return deferred_task_tween

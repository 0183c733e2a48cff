"""Which trigger runs a batch: the body's close(), the hand-off worker, or uWSGI's after-request hook.

``auto`` picks per response, so that the client has the whole response before a task runs:

- under uWSGI: ``after_req_hook`` (uWSGI calls it after closing the client's socket);
- gunicorn: inline in ``close()`` — gunicorn writes the last chunk (and the headers of an empty
  body) before it calls ``close()`` — except for a body without Content-Length to an HTTP/1.0
  client, which only the closing connection ends, after ``close()``: hand-off;
- other servers (waitress, wsgiref, mod_wsgi...): inline in ``close()`` when the body has a
  Content-Length and goes out before ``close()``; hand-off otherwise (no Content-Length: the
  chunked terminator or the connection close comes after ``close()``; HEAD, 204, 304 (or a
  conditional response WebOb may turn into one) and an empty body: waitress sends the headers only
  after ``close()``);
- a 416 (WebOb closes the body before sending anything) and an exception that escaped Pyramid
  (there is no body to wrap): hand-off.

The server's kind is read once per process, from the first request's ``SERVER_SOFTWARE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyramid_deferred import uwsgi as uwsgi_trigger
from pyramid_deferred.batch import BATCH_ATTR, RequestBatch, Trigger
from pyramid_deferred.closing import wrap_app_iter
from pyramid_deferred.core.handoff import HandOffWorker
from pyramid_deferred.core.log import get_logger

log = get_logger(__name__)

CLOSE, THREAD, UWSGI = Trigger.CLOSE.value, Trigger.THREAD.value, Trigger.UWSGI.value
STRATEGIES = ("auto", CLOSE, THREAD)
FAILED_STATUS = 400
NO_BODY_STATUSES = frozenset({204, 304})
CONDITIONS = frozenset({"HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE"})
"""Request headers with which WebOb turns a conditional response into a 304, as it sends it."""


def is_gunicorn(environ: Mapping[str, Any]) -> bool:
    return str(environ.get("SERVER_SOFTWARE", "")).startswith("gunicorn")


class BatchDispatcher:
    def __init__(self, *, strategy: str, worker: HandOffWorker) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        self.strategy = strategy
        self.worker = worker
        self._gunicorn: bool | None = None

    def finish_request(self, request: Any) -> None:
        """Pyramid's finished callback of a request that deferred something (Pyramid's last step
        before the server gets the response): schedule its batch on the final response, or, when
        an exception escaped Pyramid, without one."""
        batch: RequestBatch | None = request.__dict__.get(BATCH_ATTR)
        if batch is None or batch.decided or batch.scheduled:
            return
        response, batch.response = batch.response, None  # the body will hold the batch: no cycle
        if response is None and not batch.request_failed:
            # No tween saw this request (a script's closer(), a DummyRequest's finished callbacks):
            # it is over, nobody waits for a body, its tasks run now.
            batch.run_once(Trigger.FINISHED_CALLBACK)
            return
        if response is None:  # an exception escaped Pyramid: there is no body to wrap
            if not batch.runner.enabled or not batch.runner.has_tasks():
                batch.run_once(Trigger.FINISHED_CALLBACK)
            else:
                self.schedule_without_response(batch)
            return
        if not batch.runner.has_tasks():
            batch.run_once(Trigger.FINISHED_CALLBACK)  # only forgotten ones: report them
            return
        environ = request.environ
        closed_early = "HTTP_RANGE" in environ and is_unsatisfiable_range(request, response)
        status = response.status_code
        batch.request_failed = closed_early or status >= FAILED_STATUS or batch.transaction_committed is False
        self.schedule(batch, environ, response, closed_early=closed_early, method=environ["REQUEST_METHOD"],
                      status=status)

    def trigger_for(self, environ: Mapping[str, Any], response: Any, *, closed_early: bool = False,
                    method: str = "GET", status: int | None = None) -> str:
        """``closed_early``: WebOb will close the body before sending it (a 416 response)."""
        strategy = self.strategy
        if strategy != "auto":
            return strategy
        if uwsgi_trigger.available():
            return UWSGI
        if closed_early:
            return THREAD
        gunicorn = self._gunicorn
        if gunicorn is None:
            self._gunicorn = gunicorn = is_gunicorn(environ)
        if gunicorn:
            http10 = environ.get("SERVER_PROTOCOL") == "HTTP/1.0"
            return THREAD if http10 and response.content_length is None else CLOSE
        length = response.content_length
        if status is None:
            status = response.status_code
        if not length or method == "HEAD" or status in NO_BODY_STATUSES:
            return THREAD  # no body before close(): the headers go out after it
        if response.conditional_response and not CONDITIONS.isdisjoint(environ):
            return THREAD  # WebOb may still answer 304, without a body
        return CLOSE

    def schedule(self, batch: RequestBatch, environ: Mapping[str, Any], response: Any, *,
                 closed_early: bool = False, method: str = "GET", status: int | None = None) -> str:
        trigger = self.trigger_for(environ, response, closed_early=closed_early, method=method, status=status)
        batch.schedule(copy_context=trigger != CLOSE)
        if trigger == UWSGI:
            self.after_request(batch)
        elif trigger == THREAD:
            wrap_app_iter(response, self.hand_off, batch)
        else:
            wrap_app_iter(response, self.run_inline, batch)
        return trigger

    def schedule_without_response(self, batch: RequestBatch) -> str:
        """An exception escaped Pyramid: no body to wrap, and the server's error page comes next."""
        batch.schedule(copy_context=True)
        if self.strategy != THREAD and uwsgi_trigger.available():
            self.after_request(batch)
            return UWSGI
        self.hand_off(batch)
        return THREAD

    @staticmethod
    def run_inline(batch: RequestBatch) -> None:
        batch.run_once(Trigger.CLOSE)

    @staticmethod
    def after_request(batch: RequestBatch) -> None:
        batch.trigger = Trigger.UWSGI
        uwsgi_trigger.schedule(batch)

    def hand_off(self, batch: RequestBatch) -> None:
        batch.trigger = Trigger.THREAD
        if self.worker.submit(batch):
            return
        if self.worker.accepting:
            log.warning(
                "Hand-off queue full (%d batches waiting): running %d task(s) inline, the client waits",
                self.worker.queue_length,
                len(batch.pending_names()),
            )
            batch.run_once(Trigger.INLINE_QUEUE_FULL)
        else:
            log.warning(
                "Hand-off worker is shutting down: running %d task(s) inline", len(batch.pending_names())
            )
            batch.run_once(Trigger.INLINE_SHUTTING_DOWN)


def is_failed(batch: RequestBatch, response: Any) -> bool:
    """An error status, or a pyramid_tm transaction that was doomed or aborted."""
    return response.status_code >= FAILED_STATUS or batch.transaction_committed is False


def is_unsatisfiable_range(request: Any, response: Any) -> bool:
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

"""Which trigger runs a batch: the body's close(), the hand-off worker, or uWSGI's after-request hook.

``auto`` picks per response, so that the client has the whole response before a task runs:

- under uWSGI: ``after_req_hook`` (uWSGI calls it after closing the client's socket);
- gunicorn: inline in ``close()`` — gunicorn writes the last chunk (and the headers of an empty
  body) before it calls ``close()`` — except for a body without Content-Length to an HTTP/1.0
  client, which only the closing connection ends, after ``close()``: hand-off;
- other servers (waitress, wsgiref, mod_wsgi...): inline in ``close()`` when the body has a
  Content-Length *and* the server took all of it; hand-off otherwise (no Content-Length: the
  chunked terminator or the connection close comes after ``close()``; HEAD and 304: waitress
  sends the headers only after ``close()``);
- a 416 (WebOb closes the body before sending anything) and an exception that escaped Pyramid
  (there is no body to wrap): hand-off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyramid_deferred import uwsgi as uwsgi_trigger
from pyramid_deferred.batch import RequestBatch, Trigger
from pyramid_deferred.closing import wrap_app_iter
from pyramid_deferred.core.handoff import HandOffWorker
from pyramid_deferred.core.log import get_logger

log = get_logger(__name__)

CLOSE, THREAD, UWSGI = Trigger.CLOSE.value, Trigger.THREAD.value, Trigger.UWSGI.value
CLOSE_IF_DELIVERED = "close-if-delivered"
"""Inline in close() if the server took the whole non-empty body, else hand-off."""
STRATEGIES = ("auto", CLOSE, THREAD)


def is_gunicorn(environ: Mapping[str, Any]) -> bool:
    return str(environ.get("SERVER_SOFTWARE", "")).startswith("gunicorn")


class BatchDispatcher:
    def __init__(self, *, strategy: str, worker: HandOffWorker) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        self.strategy = strategy
        self.worker = worker

    def trigger_for(self, environ: Mapping[str, Any], response: Any, *, closed_early: bool = False) -> str:
        """``closed_early``: WebOb will close the body before sending it (a 416 response)."""
        if self.strategy == THREAD:
            return THREAD
        if self.strategy == CLOSE:
            return CLOSE
        if uwsgi_trigger.available():
            return UWSGI
        if closed_early:
            return THREAD
        if is_gunicorn(environ):
            http10 = environ.get("SERVER_PROTOCOL") == "HTTP/1.0"
            return THREAD if http10 and response.content_length is None else CLOSE
        if response.content_length is not None:
            return CLOSE_IF_DELIVERED
        return THREAD

    def schedule(
        self, batch: RequestBatch, environ: Mapping[str, Any], response: Any, *, closed_early: bool = False
    ) -> str:
        trigger = self.trigger_for(environ, response, closed_early=closed_early)
        batch.scheduled = True
        batch.capture_context()
        if trigger == UWSGI:
            self.after_request(batch)
        elif trigger == THREAD:
            wrap_app_iter(response, lambda delivered: self.hand_off(batch))
        elif trigger == CLOSE_IF_DELIVERED:
            wrap_app_iter(
                response, lambda delivered: self.run_inline(batch) if delivered else self.hand_off(batch)
            )
        else:
            wrap_app_iter(response, lambda delivered: self.run_inline(batch))
        return trigger

    def schedule_without_response(self, batch: RequestBatch) -> str:
        """An exception escaped Pyramid: no body to wrap, and the server's error page comes next."""
        batch.scheduled = True
        batch.capture_context()
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

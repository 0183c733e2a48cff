"""Which trigger runs a batch: the body's close(), the hand-off worker, or uWSGI's after-request hook.

``auto`` picks per response: inline in ``close()`` where the client already has the whole body
by then (a Content-Length, or gunicorn, which writes the last chunk before ``close()``); the
hand-off worker where it does not (no Content-Length on waitress, wsgiref, uWSGI); uWSGI's
``after_req_hook`` under uWSGI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.deferred_task.handoff import HandOffWorker
from app.deferred_task.log import deferred_task_logger
from hooks import uwsgi_trigger
from hooks.batch import RequestBatch
from hooks.closing import wrap_app_iter

CLOSE, THREAD, UWSGI = "close", "thread", "uwsgi"
STRATEGIES = ("auto", CLOSE, THREAD)


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
        if response.content_length is not None:
            return CLOSE
        if str(environ.get("SERVER_SOFTWARE", "")).startswith("gunicorn"):
            return CLOSE
        return THREAD

    def schedule(
        self, batch: RequestBatch, environ: Mapping[str, Any], response: Any, *, closed_early: bool = False
    ) -> str:
        trigger = self.trigger_for(environ, response, closed_early=closed_early)
        batch.scheduled = True
        batch.capture_context()
        if trigger == UWSGI:
            uwsgi_trigger.schedule(batch)
        elif trigger == THREAD:
            wrap_app_iter(response, lambda: self.hand_off(batch))
        else:
            wrap_app_iter(response, batch.run_once)
        return trigger

    def hand_off(self, batch: RequestBatch) -> None:
        if self.worker.submit(batch):
            return
        if self.worker.accepting:
            deferred_task_logger.warning(
                "Hand-off queue full ({} batches waiting): running {} task(s) inline, the client waits",
                self.worker.queue_length,
                len(batch.pending_names()),
            )
        else:
            deferred_task_logger.warning(
                "Hand-off worker is shutting down: running {} task(s) inline", len(batch.pending_names())
            )
        batch.run_once()

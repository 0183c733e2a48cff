"""Under uWSGI, ``uwsgi.after_req_hook`` runs after the socket is closed: the best trigger there."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from pyramid_deferred.core.log import get_logger

if TYPE_CHECKING:
    from pyramid_deferred.batch import RequestBatch

log = get_logger(__name__)


def _import_uwsgi() -> Any:
    try:
        import uwsgi  # only importable inside a uWSGI worker
    except ImportError:
        return None
    return uwsgi


uwsgi = _import_uwsgi()
_pending = threading.local()


def available() -> bool:
    return uwsgi is not None


def install() -> None:
    if uwsgi is not None:
        uwsgi.after_req_hook = run_pending_batch


def schedule(batch: RequestBatch) -> None:
    """Leave the batch for this thread's after-request hook (each uWSGI thread serves one request)."""
    stale: RequestBatch | None = getattr(_pending, "batch", None)
    if stale is not None:  # the hook did not fire for the previous request: never carry it over
        log.error("uWSGI after_req_hook did not run; running the previous batch now")
        stale.run_once()
    _pending.batch = batch


def run_pending_batch() -> None:
    batch: RequestBatch | None = getattr(_pending, "batch", None)
    _pending.batch = None
    if batch is not None:
        batch.run_once()

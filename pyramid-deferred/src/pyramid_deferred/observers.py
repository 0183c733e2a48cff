"""The extension point for code that wants to know what became of each request's tasks.

An observer is called with the ``RequestBatch`` and its ``RunReport`` right after the batch ran,
in the thread that ran it, with the batch's request id current (its log records carry it).
Metrics use it; anything else (an audit trail, a test spy) can too. Register one at configuration time::

    config.add_deferred_task_observer(lambda batch, report: ...)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pyramid.config import Configurator

from pyramid_deferred.core import RunReport
from pyramid_deferred.core.log import get_logger

if TYPE_CHECKING:
    from pyramid_deferred.batch import RequestBatch

log = get_logger(__name__)
ReportObserver = Callable[["RequestBatch", RunReport], object]


def add_deferred_task_observer(config: Configurator, observer: ReportObserver) -> None:
    """Configurator directive ``config.add_deferred_task_observer(observer)``."""
    if not callable(observer):
        raise TypeError(f"observer must be callable, got {type(observer).__name__}")
    from pyramid_deferred.hook import get_hook

    def register() -> None:
        hook = get_hook(config.registry)
        hook.observers = (*hook.observers, observer)

    config.action(None, register)


def notify_observers(batch: RequestBatch, report: RunReport) -> None:
    """Call each observer; one that raises is logged and never reaches the server or the next one."""
    for observer in batch.observers:
        try:
            observer(batch, report)
        except Exception:
            log.exception("Deferred task observer %r failed", observer)

"""The extension point for code that wants to know what became of each request's tasks.

An observer is called with the ``RequestBatch`` and its ``RunReport`` right after the batch ran,
in the thread that ran it and inside the request id's logging context. Metrics use it; anything
else (an audit trail, a test spy) can too. Register one at configuration time::

    config.add_deferred_task_observer(lambda batch, report: ...)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from loguru import logger
from pyramid.config import Configurator
from pyramid.registry import Registry

from app.deferred_task import RunReport
from app.deferred_task.log import CHANNEL

if TYPE_CHECKING:
    from hooks.batch import RequestBatch

ReportObserver = Callable[["RequestBatch", RunReport], object]
OBSERVERS_ATTR = "deferred_task_observers"


def add_deferred_task_observer(config: Configurator, observer: ReportObserver) -> None:
    """Configurator directive ``config.add_deferred_task_observer(observer)``."""
    if not callable(observer):
        raise TypeError(f"observer must be callable, got {type(observer).__name__}")
    observers: list[ReportObserver] = config.registry.__dict__.setdefault(OBSERVERS_ATTR, [])
    observers.append(observer)


def registered_observers(registry: Registry) -> tuple[ReportObserver, ...]:
    return tuple(getattr(registry, OBSERVERS_ATTR, ()))


def notify_observers(batch: RequestBatch, report: RunReport) -> None:
    """Call each observer; one that raises is logged and never reaches the server or the next one."""
    for observer in batch.observers:
        try:
            observer(batch, report)
        except Exception:
            logger.bind(channel=CHANNEL).opt(exception=True).error(
                "Deferred task observer {!r} failed", observer
            )

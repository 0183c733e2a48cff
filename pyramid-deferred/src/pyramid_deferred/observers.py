"""The extension point for code that wants to know what became of each request's tasks.

An observer is called with the ``RequestBatch`` and its ``RunReport`` right after the batch ran,
in the thread that ran it and inside the request id's logging context; one that raises is logged
and never reaches the server or the next one. Metrics use it; anything else (an audit trail, a
test spy) can too. Register one at configuration time::

    config.add_deferred_task_observer(lambda batch, report: ...)
"""

from __future__ import annotations

from pyramid.config import Configurator

from pyramid_deferred.hook import ReportObserver, get_hook


def add_deferred_task_observer(config: Configurator, observer: ReportObserver) -> None:
    """Configurator directive ``config.add_deferred_task_observer(observer)``."""
    if not callable(observer):
        raise TypeError(f"observer must be callable, got {type(observer).__name__}")

    def register() -> None:
        hook = get_hook(config.registry)
        hook.observers = (*hook.observers, observer)

    config.action(None, register)

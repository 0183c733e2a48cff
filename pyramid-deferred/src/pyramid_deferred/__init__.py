"""pyramid_deferred: run fire-and-forget work after the response has left, in priority order,
within a time budget, each task isolated and logged by name.

    config.include("pyramid_deferred")

    def view(request):
        request.deferred_task.defer(send_event, max_cost_seconds=0.5, name="meta.purchase")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyramid_deferred.core import DeferredTask, DeferredTaskRunner, Outcome, RunReport, TaskResult
from pyramid_deferred.core.log import CHANNEL, NOTICE
from pyramid_deferred.scope import NoRunnerError, current_runner, deferred_scope
from pyramid_deferred.settings import DeferredTaskSettings
from pyramid_deferred.values import ConfigError

if TYPE_CHECKING:
    from pyramid.config import Configurator

__version__ = "0.1.0"
"""The package's one version: setuptools reads it when it builds (``pyproject.toml``)."""

PRIORITY_CRITICAL = DeferredTaskRunner.PRIORITY_CRITICAL
PRIORITY_NORMAL = DeferredTaskRunner.PRIORITY_NORMAL
PRIORITY_LOW = DeferredTaskRunner.PRIORITY_LOW

__all__ = [
    "CHANNEL",
    "NOTICE",
    "PRIORITY_CRITICAL",
    "PRIORITY_LOW",
    "PRIORITY_NORMAL",
    "ConfigError",
    "DeferredTask",
    "DeferredTaskRunner",
    "DeferredTaskSettings",
    "NoRunnerError",
    "Outcome",
    "RunReport",
    "TaskResult",
    "__version__",
    "current_runner",
    "deferred_scope",
    "includeme",
]


def includeme(config: Configurator) -> None:
    """``config.include("pyramid_deferred")`` (see :mod:`pyramid_deferred.registration`).

    Pyramid is imported here, not at the top: the runner, the scope and the settings are usable
    without it (a service, a script, a worker).
    """
    from pyramid_deferred.registration import include

    include(config)

"""Framework-free core: defer work during a request, run it after the response, within a budget."""

from pyramid_deferred.core.report import Outcome, RunReport, TaskResult
from pyramid_deferred.core.runner import DeferredTaskRunner
from pyramid_deferred.core.task import DeferredTask

__all__ = ["DeferredTask", "DeferredTaskRunner", "Outcome", "RunReport", "TaskResult"]

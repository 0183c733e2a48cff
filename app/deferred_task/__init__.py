"""Framework-free core: defer work during a request, run it after the response, within a budget."""

from app.deferred_task.report import Outcome, RunReport, TaskResult
from app.deferred_task.runner import DeferredTaskRunner
from app.deferred_task.task import DeferredTask

__all__ = ["DeferredTask", "DeferredTaskRunner", "Outcome", "RunReport", "TaskResult"]

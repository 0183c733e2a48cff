"""The application's one dependency-injector container."""

from __future__ import annotations

import time

from dependency_injector import containers, providers
from prometheus_client import CollectorRegistry

from app.deferred_task import DeferredTaskRunner
from app.deferred_task.handoff import HandOffWorker
from app.deferred_task.log import deferred_task_logger
from app.metrics import DeferredTaskMetrics
from config.logging import setup_logging
from hooks.dispatch import BatchDispatcher


class Container(containers.DeclarativeContainer):
    config = providers.Configuration()

    logging = providers.Resource(
        setup_logging,
        threshold=config.deferred_task.log_threshold,
        max_files=config.deferred_task.log_max_files,
        path=config.deferred_task.log_path,
        app_log_level=config.deferred_task.app_log_level,
    )

    clock = providers.Object(time.monotonic)
    deferred_task_logger = providers.Object(deferred_task_logger)

    # One runner per request: the same object for every lookup during a request, another one
    # for a concurrent request. The hook resets it when each request starts, because server
    # threads (and their contexts) are reused from one request to the next.
    deferred_task = providers.ContextLocalSingleton(
        DeferredTaskRunner,
        enabled=config.deferred_task.enabled,
        budget_seconds=config.deferred_task.budget_seconds,
        logger=deferred_task_logger,
        clock=clock,
    )

    # One per process: the threads that run batches whose client could not have the whole
    # response before close() (see hooks/dispatch.py). Threads start on first use.
    handoff_worker = providers.Singleton(
        HandOffWorker,
        threads=config.deferred_task.worker_threads,
        queue_size=config.deferred_task.worker_queue_size,
        grace_seconds=config.deferred_task.shutdown_grace_seconds,
        logger=deferred_task_logger,
    )

    deferred_task_dispatcher = providers.Singleton(
        BatchDispatcher,
        strategy=config.deferred_task.strategy,
        worker=handoff_worker,
    )

    # One Prometheus registry per application (not the library's global one), so that two
    # apps in one process, such as two tests, never add to each other's counters.
    metrics_registry = providers.Singleton(CollectorRegistry, auto_describe=True)
    metrics = providers.Singleton(DeferredTaskMetrics, registry=metrics_registry)

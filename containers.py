"""The application's one dependency-injector container."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from typing import Protocol, TypeVar

from dependency_injector import containers, providers
from prometheus_client import CollectorRegistry

from app.deferred_task import DeferredTaskRunner
from app.deferred_task.handoff import HandOffWorker
from app.deferred_task.log import deferred_task_logger
from app.metrics import DeferredTaskMetrics
from app.services import (
    AdvisableAIService,
    AdvisableAISettings,
    BreakerStore,
    BreakerStoreSettings,
    ManagoService,
    ManagoSettings,
    MatomoService,
    MatomoSettings,
    MatomoTracker,
    MetaConversionsService,
    MetaSettings,
    create_http_client,
)
from app.shop import Shop
from config.logging import setup_logging
from hooks.dispatch import BatchDispatcher


class Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closable)


def closing_stack() -> Iterator[contextlib.ExitStack]:
    """A Resource: what was registered on the stack is closed when the resource shuts down."""
    with contextlib.ExitStack() as stack:
        yield stack


def closed_at_shutdown(closer: contextlib.ExitStack, client: C) -> C:
    """``client``, which ``closer`` will close at shutdown."""
    closer.callback(client.close)
    return client


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

    # --- Integrations (app/services): Meta Conversions API, Advisable AI, Manago, Matomo ---

    # The environment the integration settings are read from: build_container() puts the mapping
    # it was given here and reads every settings provider once, so a bad value stops start-up.
    environ: providers.Provider[Mapping[str, str]] = providers.Object(os.environ)

    meta_settings = providers.Singleton(MetaSettings.from_environ, environ)
    advisable_ai_settings = providers.Singleton(AdvisableAISettings.from_environ, environ)
    manago_settings = providers.Singleton(ManagoSettings.from_environ, environ)
    matomo_settings = providers.Singleton(MatomoSettings.from_environ, environ)
    breaker_store_settings = providers.Singleton(BreakerStoreSettings.from_environ, environ)

    # Clients opened on first use are registered here and closed by shutdown_resources(). They
    # are not Resources themselves: init_resources() runs at start-up, before a pre-forking
    # server (gunicorn --preload) forks, and a Resource's first use is not thread-safe.
    integration_clients = providers.Resource(closing_stack)

    # One per process, created on first use, that is in the worker that uses it (after any
    # fork); ThreadSafeSingleton, because the first two requests may well ask at the same time.
    http_client = providers.ThreadSafeSingleton(
        closed_at_shutdown, integration_clients, providers.Factory(create_http_client)
    )
    breaker_store = providers.ThreadSafeSingleton(
        closed_at_shutdown,
        integration_clients,
        providers.Factory(BreakerStore.from_settings, breaker_store_settings),
    )

    meta = providers.ThreadSafeSingleton(
        MetaConversionsService,
        settings=meta_settings,
        http=http_client,
        breaker=breaker_store.provided.breaker.call("meta", meta_settings.provided.breaker),
    )
    advisable_ai = providers.ThreadSafeSingleton(
        AdvisableAIService,
        settings=advisable_ai_settings,
        http=http_client,
        breaker=breaker_store.provided.breaker.call(
            "advisable_ai", advisable_ai_settings.provided.breaker
        ),
    )
    manago = providers.ThreadSafeSingleton(
        ManagoService,
        settings=manago_settings,
        http=http_client,
        breaker=breaker_store.provided.breaker.call("manago", manago_settings.provided.breaker),
    )
    matomo = providers.ThreadSafeSingleton(
        MatomoService,
        settings=matomo_settings,
        http=http_client,
        breaker=breaker_store.provided.breaker.call("matomo", matomo_settings.provided.breaker),
    )

    # The request's Matomo tracker: collects the tracking calls made while the request is
    # handled, then the view defers its flush. Per request like deferred_task: app.views resets
    # it when each request starts (server threads are reused), and the request's first lookup
    # passes the visit: container.matomo_tracker(visit=MatomoVisit(...)).
    matomo_tracker = providers.ContextLocalSingleton(MatomoTracker, service=matomo)

    # --- The example shop (app/shop), in memory ---
    shop = providers.ThreadSafeSingleton(Shop)

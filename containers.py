"""The application's one dependency-injector container."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from typing import Protocol, TypeVar

from dependency_injector import containers, providers
from pyramid_deferred import current_runner

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
from app.services.public_url import PublicOrigin
from app.shop import Shop
from config.logging import setup_logging
from config.settings import AppSettings


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
    # The app's own settings (config/settings.py), defaults included: a bare Container() works.
    config = providers.Configuration(default={"app": asdict(AppSettings())})

    logging = providers.Resource(
        setup_logging,
        threshold=config.app.log_threshold,
        max_files=config.app.log_max_files,
        path=config.app.log_path,
        app_log_level=config.app.app_log_level,
    )

    # The request's deferred-task runner, from the pyramid_deferred add-on: the same object for
    # every lookup during a request (and in its tasks), another one in a concurrent request;
    # outside a request it raises, naming what to do instead.
    deferred_task = providers.Callable(current_runner)

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

    # Where the shop's pages are, as visitors see them: the origin of every URL sent to Meta and
    # Matomo (app/services/public_url.py), never the request's Host header.
    public_origin = providers.Singleton(PublicOrigin, config.app.public_origin)

    # --- The example shop (app/shop), in memory ---
    shop = providers.ThreadSafeSingleton(Shop)

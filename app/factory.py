"""Builds the container and the Pyramid WSGI app from settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from dependency_injector import providers
from pyramid.config import Configurator
from pyramid.router import Router

from config.settings import load_app_settings
from containers import Container


def build_container(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Container:
    """Validate the app's settings now, so a bad value stops start-up with a message naming it.

    The integrations' settings come from ``environ`` only; each raises its service's
    ValueError here. Their clients are not opened here but on first use (after any fork).
    The add-on's ``deferred_task.*`` settings are validated when the configuration commits.
    """
    environ = os.environ if environ is None else environ
    container = Container(environ=providers.Object(environ))
    container.config.from_dict({"app": asdict(load_app_settings(settings, environ))})
    for integration_settings in (
        container.meta_settings,
        container.advisable_ai_settings,
        container.manago_settings,
        container.matomo_settings,
        container.breaker_store_settings,
    ):
        integration_settings()
    return container


def make_configurator(settings: Mapping[str, Any], container: Container) -> Configurator:
    container.init_resources()
    config = Configurator(settings=dict(settings))
    config.registry.container = container
    config.include("hooks")
    config.include("app.views")
    return config


def create_app(settings: Mapping[str, Any] | None = None, *, container: Container | None = None) -> Router:
    settings = settings or {}
    container = container or build_container(settings)
    app: Router = make_configurator(settings, container).make_wsgi_app()
    return app

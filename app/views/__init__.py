"""The application's routes."""

from __future__ import annotations

from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    config.add_route("home", "/")
    config.add_route("health", "/health")
    config.add_route("checkout", "/checkout")
    config.scan("app.views")

"""The Pyramid application. ``main`` is the paste entry point; ``create_app`` is what tests use.

Both import Pyramid lazily, so that importing the framework-free core (``app.deferred_task``)
never imports Pyramid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyramid.router import Router

    from containers import Container


def create_app(
    settings: Mapping[str, Any] | None = None,
    *,
    container: Container | None = None,
    handle_sigterm: bool = False,
) -> Router:
    from app.factory import create_app as factory

    return factory(settings, container=container, handle_sigterm=handle_sigterm)


def main(global_config: Mapping[str, Any] | None, **settings: Any) -> Router:
    """Paste app factory (``pserve``, ``gunicorn --paste``)."""
    return create_app(settings, handle_sigterm=True)

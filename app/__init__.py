"""The example shop: a Pyramid app that uses the pyramid_deferred add-on through its public API.

``main`` is the paste entry point; ``create_app`` is what tests use. Both import Pyramid lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyramid.router import Router

    from containers import Container


def create_app(settings: Mapping[str, Any] | None = None, *, container: Container | None = None) -> Router:
    from app.factory import create_app as factory

    return factory(settings, container=container)


def main(global_config: Mapping[str, Any] | None, **settings: Any) -> Router:
    """Paste app factory (``pserve``, ``gunicorn --paste``)."""
    return create_app(settings)

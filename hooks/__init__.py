"""Pyramid glue: ``config.include("hooks")`` makes deferred tasks run after each response.

Views reach the request's runner as ``request.deferred_task`` (set by the tween when the request
starts) or ``request.registry.container.deferred_task()``: the same object.
"""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.events import NewResponse
from pyramid.tweens import INGRESS

from hooks import uwsgi_trigger
from hooks.observers import add_deferred_task_observer
from hooks.request_id import REQUEST_ID_TWEEN
from hooks.tween import attach_run_after_response


def includeme(config: Configurator) -> None:
    config.add_directive("add_deferred_task_observer", add_deferred_task_observer)
    config.include("hooks.request_id")
    config.include("hooks.metrics")
    # Just inside the request-id tween: it sees the final response, exception views included.
    config.add_tween("hooks.tween.deferred_task_tween_factory", under=(REQUEST_ID_TWEEN, INGRESS))
    config.add_subscriber(attach_run_after_response, NewResponse)
    uwsgi_trigger.install()

"""Pyramid glue: ``config.include("hooks")`` makes deferred tasks run after each response."""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.events import NewResponse
from pyramid.request import Request
from pyramid.tweens import INGRESS

from app.deferred_task import DeferredTaskRunner
from hooks import uwsgi_trigger
from hooks.observers import add_deferred_task_observer
from hooks.tween import BATCH_ATTR, attach_run_after_response


def request_deferred_task(request: Request) -> DeferredTaskRunner:
    """``request.deferred_task``: this request's runner, the one the hook will run."""
    batch = getattr(request, BATCH_ATTR, None)
    if batch is not None:
        runner: DeferredTaskRunner = batch.runner
        return runner
    container = getattr(request.registry, "container", None)
    if container is None:
        raise LookupError("no container on the registry: build the app with app.main()/create_app()")
    runner = container.deferred_task()
    return runner


def includeme(config: Configurator) -> None:
    config.add_directive("add_deferred_task_observer", add_deferred_task_observer)
    config.include("hooks.request_id")
    config.include("hooks.metrics")
    # Outermost tween: it sees the final response, exception views included.
    config.add_tween("hooks.tween.deferred_task_tween_factory", under=INGRESS)
    config.add_subscriber(attach_run_after_response, NewResponse)
    config.add_request_method(request_deferred_task, "deferred_task", reify=True)
    uwsgi_trigger.install()

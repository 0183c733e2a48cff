"""What ``config.include("pyramid_deferred")`` registers, in one place: tweens, the
``NewResponse`` subscriber, directives, and the app's :class:`DeferredTaskHook`."""

from __future__ import annotations

from pyramid.config import PHASE2_CONFIG, Configurator
from pyramid.tweens import EXCVIEW, INGRESS

from pyramid_deferred import uwsgi as uwsgi_trigger
from pyramid_deferred.durable import ServiceCheck, SpillOver
from pyramid_deferred.durable.outbox import Outbox
from pyramid_deferred.hook import (
    HOOK_ATTR,
    DeferredTaskHook,
    RequestRunner,
    RunnerFactory,
    get_hook,
    set_spill_over,
)
from pyramid_deferred.lifecycle import install_shutdown
from pyramid_deferred.observers import add_deferred_task_observer
from pyramid_deferred.settings import DeferredTaskSettings, load_deferred_task_settings
from pyramid_deferred.transactions import TM_TWEEN
from pyramid_deferred.tween import DEFERRED_TASK_TWEEN
from pyramid_deferred.values import ConfigError


def set_deferred_task_runner_factory(config: Configurator, factory: RunnerFactory) -> None:
    """Directive ``config.set_deferred_task_runner_factory(factory)``: build each request's runner
    with ``factory(enabled=..., budget_seconds=..., logger=..., clock=...)``."""
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}")

    def register() -> None:
        get_hook(config.registry).runner_factory = factory

    config.action(("pyramid_deferred", "runner_factory"), register)


def set_deferred_task_service_check(config: Configurator, check: ServiceCheck) -> None:
    """Directive ``config.set_deferred_task_service_check(check)``: ``check(service)`` answers, for a
    durable task deferred with ``service="meta"``, None while the service may be called, else the
    seconds until it may be retried (its open circuit breaker's reset timeout). Such a task spills
    without spending budget, and Celery waits that long before its first attempt."""
    if not callable(check):
        raise TypeError(f"check must be callable, got {type(check).__name__}")

    def register() -> None:
        hook = get_hook(config.registry)
        hook.service_check = check
        if hook.spill_over is not None:
            hook.spill_over.service_check = check

    config.action(("pyramid_deferred", "service_check"), register)


def set_deferred_task_outbox(config: Configurator, outbox: Outbox) -> None:
    """Directive ``config.set_deferred_task_outbox(outbox)``: record durable tasks in ``outbox``
    instead of the broker's Redis; an outbox with ``session_of`` (``SqlOutbox``) writes them in the
    request's own pyramid_tm transaction. Needs the spill-over (``deferred_task.broker_url``)."""
    if not all(callable(getattr(outbox, method, None)) for method in ("record", "clear", "take_expired")):
        raise TypeError(f"outbox must have record, clear and take_expired, got {type(outbox).__name__}")

    def register() -> None:
        hook = get_hook(config.registry)
        if hook.spill_over is None:
            raise ConfigError(
                "config.set_deferred_task_outbox() needs the spill-over: set deferred_task.broker_url "
                "(APP_DEFERRED_TASK_BROKER_URL) to the Celery broker's redis:// URL"
            )
        hook.spill_over.outbox = outbox

    config.action(("pyramid_deferred", "outbox"), register)


def spill_over_for(settings: DeferredTaskSettings) -> SpillOver | None:
    """The Celery spill-over when a broker is set (None otherwise: durable tasks are then plain)."""
    if not settings.broker_url:
        return None
    try:
        from pyramid_deferred.celery import build_spill_over
    except ImportError as error:
        raise ConfigError(
            f"deferred_task.broker_url is set but Celery is not installed ({error.name} is missing); "
            "install pyramid-deferred[celery]"
        ) from None
    return build_spill_over(settings)


def include(config: Configurator) -> None:
    """Register the add-on: tweens, the ``NewResponse`` subscriber, directives, and (when the
    configuration commits) the app's :class:`DeferredTaskHook` built from its settings."""
    config.add_directive("add_deferred_task_observer", add_deferred_task_observer)
    config.add_directive("set_deferred_task_runner_factory", set_deferred_task_runner_factory)
    config.add_directive("set_deferred_task_service_check", set_deferred_task_service_check)
    config.add_directive("set_deferred_task_outbox", set_deferred_task_outbox)
    # One tween, outside pyramid_tm (whose outcome it must know) and exception views (it sees
    # their response); no subscriber: any subscriber makes Pyramid notify four events per request.
    config.add_tween(DEFERRED_TASK_TWEEN, under=INGRESS, over=(TM_TWEEN, EXCVIEW))
    registry = config.registry
    # Every request Pyramid applies its extensions to gets its runner: the router's, a script's
    # (prepare, bootstrap, pshell), a DummyRequest given to apply_request_extensions.
    config.add_request_method(RequestRunner(registry), "deferred_task")

    def register() -> None:
        settings = load_deferred_task_settings(registry.settings)
        hook = DeferredTaskHook(settings)
        set_spill_over(hook, spill_over_for(settings))
        setattr(registry, HOOK_ATTR, hook)
        install_shutdown(hook.stop, exit_on_sigterm=settings.exit_on_sigterm)
        uwsgi_trigger.install()

    config.action(("pyramid_deferred", "hook"), register, order=PHASE2_CONFIG)

"""The add-on's state for one application: its settings, runners, triggers and observers.

``config.include("pyramid_deferred")`` builds one from the app's settings (and the environment)
when the configuration is committed; tweens, subscribers and directives reach it through the
registry with :func:`get_hook`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pyramid_deferred.batch import BATCH_ATTR, BatchSettings, RequestBatch
from pyramid_deferred.core import DeferredTaskRunner, RunReport
from pyramid_deferred.core.costs import CostModel
from pyramid_deferred.core.handoff import HandOffWorker
from pyramid_deferred.core.runner import LazyExecutor, OverrunWarnings
from pyramid_deferred.core.runner import log as runner_log
from pyramid_deferred.dispatch import BatchDispatcher
from pyramid_deferred.durable import ServiceCheck, SpillOver
from pyramid_deferred.lifecycle import ProcessStop
from pyramid_deferred.request_id import new_request_id
from pyramid_deferred.settings import DeferredTaskSettings
from pyramid_deferred.transactions import watch_transaction
from pyramid_deferred.watchdog import Watchdog

if TYPE_CHECKING:
    from pyramid.registry import Registry

ReportObserver = Callable[[RequestBatch, RunReport], object]
"""``observer(batch, report)``: called after each batch ran (``config.add_deferred_task_observer``)."""

HOOK_ATTR = "deferred_task_hook"
RESPONSE_ATTR = "_deferred_task_response"
"""Where the tween parks the response of a request that had not deferred yet: a first ``defer()``
in a response callback or a ``NewResponse`` subscriber finds it there."""


RunnerFactory = Callable[..., DeferredTaskRunner]
"""Builds one request's runner from ``DeferredTaskRunner``'s keyword arguments (``enabled``,
``budget_seconds``, ``logger``, ``clock``, ``max_tasks``, ``overrun_warnings``);
``DeferredTaskRunner`` itself is the default."""


_factory_override: RunnerFactory | None = None


def override_runner_factory(factory: RunnerFactory | None) -> RunnerFactory | None:
    """Every app in this process builds its runners with ``factory`` (None: each app's own again).

    For test tooling (``pyramid_deferred.testing``); returns the previous override.
    """
    global _factory_override
    previous, _factory_override = _factory_override, factory
    return previous


class DeferredTaskHook:
    def __init__(
        self,
        settings: DeferredTaskSettings,
        *,
        observers: tuple[ReportObserver, ...] = (),
        runner_factory: RunnerFactory = DeferredTaskRunner,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._batch_settings: BatchSettings | None = None
        self._hard_limit_seconds = settings.hard_limit_seconds
        self._observers = observers
        self._spill_over: SpillOver | None = None
        self._runner_factory = runner_factory
        self._clock = clock
        self.logger = runner_log
        """What this app's runners log on (``pyramid_deferred.core.runner``, a stdlib logger)."""
        self.worker = HandOffWorker(
            threads=settings.worker_threads,
            queue_size=settings.worker_queue_size,
            grace_seconds=settings.shutdown_grace_seconds,
        )
        self.dispatcher = BatchDispatcher(strategy=settings.strategy, worker=self.worker)
        self.overrun_warnings = OverrunWarnings()
        self.cost_model = (
            CostModel(min_samples=settings.learned_cost_min_samples, quantile=settings.learned_cost_quantile)
            if settings.learned_costs else None
        )
        self._concurrent_pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.service_check: ServiceCheck | None = None
        """Where durable tasks go instead of being lost (``deferred_task.broker_url``); None: off."""
        self._prototype: DeferredTaskRunner | None = None
        self.watchdog = Watchdog(clock=clock)
        self.live: set[RequestBatch] = set()
        """This app's batches from their scheduling to their report (see ``pyramid_deferred.lifecycle``)."""
        self.stop = ProcessStop(
            self.worker, self.watchdog, self.live, grace_seconds=settings.shutdown_grace_seconds
        )

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        """A test's clock: the next runners are built with it."""
        self._clock = clock
        self._prototype = None
        self._batch_settings = None

    # What every batch of the app shares (BatchSettings, built once): changing one of these
    # (a directive, gunicorn's hard limit, a test) makes the next batches see the new value.

    @property
    def hard_limit_seconds(self) -> float:
        """Mutable: ``pyramid_deferred.gunicorn`` sets it from a sync worker's timeout."""
        return self._hard_limit_seconds

    @hard_limit_seconds.setter
    def hard_limit_seconds(self, seconds: float) -> None:
        self._hard_limit_seconds = seconds
        self._batch_settings = None

    @property
    def observers(self) -> tuple[ReportObserver, ...]:
        return self._observers

    @observers.setter
    def observers(self, observers: tuple[ReportObserver, ...]) -> None:
        self._observers = observers
        self._batch_settings = None

    @property
    def spill_over(self) -> SpillOver | None:
        """Where durable tasks go instead of being lost (``deferred_task.broker_url``); None: off."""
        return self._spill_over

    @spill_over.setter
    def spill_over(self, spill_over: SpillOver | None) -> None:
        self._spill_over = spill_over
        self._batch_settings = None

    def batch_settings(self) -> BatchSettings:
        shared = self._batch_settings
        if shared is None:
            self._batch_settings = shared = BatchSettings(
                self._hard_limit_seconds, self._clock, self._observers, self.watchdog, self._spill_over,
                self.live,
            )
        return shared

    @property
    def runner_factory(self) -> RunnerFactory:
        return self._runner_factory

    @runner_factory.setter
    def runner_factory(self, factory: RunnerFactory) -> None:
        self._runner_factory = factory
        self._prototype = None

    new_request_id = staticmethod(new_request_id)

    def new_runner(self) -> DeferredTaskRunner:
        factory = _factory_override or self.runner_factory
        if factory is DeferredTaskRunner:  # the default: spawned from a checked prototype
            prototype = self._prototype
            if prototype is None:
                self._prototype = prototype = factory(**self.runner_options())
            return prototype.spawn(on_first_task=self.attach)
        runner = factory(**self.runner_options())
        runner.on_first_task = self.attach
        return runner

    def attach(self, runner: DeferredTaskRunner) -> None:
        """The request's first task: from now on it has a batch to run after it.

        Pyramid's request ends once its finished callbacks have run: a first task deferred after
        that (from a thread the view started, or while the server iterates the body) could never
        run, so it is refused, loudly."""
        request: Any = runner.owner
        if request is None:  # past the view: a response callback or subscriber may still defer
            current = _current_request()
            if current is None or current.__dict__.get("deferred_task") is not runner:
                runner.close()
                raise RuntimeError(
                    "this request is over: a task deferred now would never run. Defer while the "
                    "request is handled, or use `with pyramid_deferred.deferred_scope():`"
                )
            request = current
        attributes = request.__dict__
        batch = RequestBatch.for_request(
            runner, self.batch_settings(), attributes.get("request_id"),
            attributes.get("deferred_task_started", 0.0),
        )
        response = attributes.get(RESPONSE_ATTR)
        if response is not None:  # a first defer() in a response callback: the tween parked it
            batch.response = response
        attributes[BATCH_ATTR] = batch
        watch_transaction(request, batch)
        request.add_finished_callback(self.dispatcher.finish_request)

    def runner_options(self) -> dict[str, Any]:
        """``DeferredTaskRunner``'s keyword arguments for this app's runners."""
        return {
            "enabled": self.settings.enabled,
            "budget_seconds": self.settings.budget_seconds,
            "logger": self.logger,
            "clock": self.clock,
            "max_tasks": self.settings.max_tasks,
            "overrun_warnings": self.overrun_warnings,
            "executor": LazyExecutor(self.concurrent_pool) if self.settings.concurrent_threads else None,
            "cost_model": self.cost_model,
        }

    def concurrent_pool(self) -> ThreadPoolExecutor:
        """The per-process pool of concurrent tasks, started on first use (in the process that
        serves requests: threads do not survive a fork)."""
        with self._pool_lock:
            if self._concurrent_pool is None:
                self._concurrent_pool = ThreadPoolExecutor(
                    max_workers=self.settings.concurrent_threads, thread_name_prefix="deferred-concurrent"
                )
            return self._concurrent_pool


def set_spill_over(hook: DeferredTaskHook, spill_over: SpillOver | None,
                   service_check: ServiceCheck | None = None) -> None:
    """Durable tasks of this app's requests spill to ``spill_over`` (each request's batch carries
    it, so those the hand-off worker still holds at shutdown spill too)."""
    service_check = service_check or hook.service_check
    if spill_over is not None and service_check is not None:
        spill_over.service_check = service_check
    hook.spill_over = spill_over


class RequestRunner:
    """``request.deferred_task``, as a request extension (``config.add_request_method``): Pyramid
    binds it to every request it applies its extensions to, and binding gives the request a new
    runner. So the router's requests have one, and so do those that never pass through the
    tweens: ``pyramid.scripting.prepare()``/``bootstrap()`` (scripts, pshell), and a
    ``DummyRequest`` given to ``pyramid.request.apply_request_extensions``. Their tasks run when
    their finished callbacks are processed (a script's ``closer()``; see docs/testing.md).

    A method extension, not a property: Pyramid builds a request subclass per request for a
    property (~15 µs), while a method is one ``__get__`` and one attribute."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._new_runner: Callable[[], DeferredTaskRunner] | None = None

    def __get__(self, request: Any, owner: type | None = None) -> DeferredTaskRunner:
        new_runner = self._new_runner
        if new_runner is None:
            self._new_runner = new_runner = get_hook(self.registry).new_runner
        runner = new_runner()
        runner.owner = request  # what its first defer() attaches to (the tween lets go of it)
        return runner


def get_hook(registry: Registry) -> DeferredTaskHook:
    """The app's hook; raises if the app did not ``config.include("pyramid_deferred")``."""
    hook: DeferredTaskHook | None = getattr(registry, HOOK_ATTR, None)
    if hook is None:
        raise LookupError(
            'pyramid_deferred is not set up in this app: call config.include("pyramid_deferred") '
            "and let the configuration commit (make_wsgi_app) before using it"
        )
    return hook


def _current_request() -> Any:
    from pyramid.threadlocal import get_current_request

    return get_current_request()


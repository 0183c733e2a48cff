"""Spill-over to Celery, Redis as the broker: ``pip install pyramid-deferred[celery]``.

The web side (built by ``config.include("pyramid_deferred")`` once ``deferred_task.broker_url``
is set): :class:`CelerySpiller` publishes a spilled task with ``apply_async(retry=False)`` and
socket timeouts, so a dead broker costs one bounded attempt, never Celery's connection retries.

The worker side: :func:`create_celery_app` builds a Celery app with the one task,
``pyramid_deferred.run_durable``, which claims the task's idempotency key in Redis, imports the
task's function, runs it with its arguments, and retries with exponential backoff (or after the
breaker's reset timeout for :class:`~pyramid_deferred.durable.ServiceDown`); after its last retry
it logs the task at ERROR with everything needed to replay it (a dead letter). Start a worker::

    celery -A yourapp.worker worker --pool=solo -l info     # yourapp/worker.py: app = create_celery_app()
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from celery import Celery, Task
from celery.exceptions import Retry
from loguru import logger
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry as RedisRetry

from pyramid_deferred.core.durable import call_with_spill_possible
from pyramid_deferred.core.log import CHANNEL
from pyramid_deferred.durable import (
    BrokerUnavailable,
    Claim,
    ServiceDown,
    SpilledTask,
    SpillOver,
    decode_payload,
    load_function,
)
from pyramid_deferred.settings import DeferredTaskSettings, load_deferred_task_settings

TASK_NAME = "pyramid_deferred.run_durable"
KEY_PREFIX = "pyramid_deferred:durable:"
HELD, DONE = "held", "done"
log = logger.bind(channel=CHANNEL)
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^@/\s]*@", re.IGNORECASE)


def mask_url(text: str) -> str:
    """``redis://:secret@host`` → ``redis://***@host``, wherever a URL with credentials appears."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


def redis_client(url: str, timeout: float) -> Redis:
    """Fails fast: a claim that waits on Redis would cost the task its budget."""
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                          retry=RedisRetry(NoBackoff(), 0))


class RedisClaims:
    """Idempotency keys in Redis: ``SET key held NX PX lease`` before a run, ``done`` after it."""

    def __init__(self, redis: Redis, *, done_ttl_seconds: float, prefix: str = KEY_PREFIX) -> None:
        self.redis = redis
        self.done_ttl_seconds = done_ttl_seconds
        self.prefix = prefix

    def claim(self, key: str, lease_seconds: float) -> Claim:
        name = self.prefix + key
        try:
            if self.redis.set(name, HELD, nx=True, px=max(1, int(lease_seconds * 1000))):
                return Claim.CLAIMED
            value = self.redis.get(name)
        except RedisError as error:
            log.warning("Idempotency key {} could not be claimed ({}): running it anyway", key,
                        mask_url(str(error)))
            return Claim.UNKNOWN
        if value is None:  # expired between the two commands: try once more
            return self.claim(key, lease_seconds) if lease_seconds > 0 else Claim.UNKNOWN
        return Claim.DONE if value == DONE.encode() else Claim.HELD

    def held_for(self, key: str) -> float:
        """Seconds left on another run's lease (0 when unknown)."""
        try:
            left = int(self.redis.pttl(self.prefix + key))
        except RedisError:
            return 0.0
        return max(0.0, left / 1000)

    def done(self, key: str) -> None:
        try:
            self.redis.set(self.prefix + key, DONE, ex=max(1, int(self.done_ttl_seconds)))
        except RedisError as error:
            log.warning("Idempotency key {} ran but could not be recorded ({}): a spilled copy may run "
                        "again", key, mask_url(str(error)))

    def release(self, key: str) -> None:
        name = self.prefix + key
        try:
            if self.redis.get(name) == HELD.encode():
                self.redis.delete(name)
        except RedisError as error:
            log.warning("Idempotency key {} could not be released ({}): the retry waits for its lease",
                        key, mask_url(str(error)))


def celery_config(settings: DeferredTaskSettings) -> dict[str, Any]:
    """Bounded everywhere: connecting, sending, and a worker's hold on a message."""
    timeout = settings.broker_timeout_seconds
    return {
        "broker_url": settings.broker_url,
        "broker_connection_timeout": timeout,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "socket_connect_timeout": timeout, "socket_timeout": timeout, "max_retries": 0,
            # a message not acknowledged for this long goes back to the queue (a killed worker)
            "visibility_timeout": 3600,
        },
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_hijack_root_logger": False,
    }


def backoff(retries: int, settings: DeferredTaskSettings) -> float:
    """Exponential: base, twice the base, four times... up to the maximum."""
    delay = settings.spill_backoff_seconds * 2 ** min(retries, 30)
    return float(min(delay, settings.spill_backoff_max_seconds))


def create_celery_app(
    settings: DeferredTaskSettings | Mapping[str, Any] | None = None,
    *,
    main: str = "pyramid_deferred",
    environ: Mapping[str, str] | None = None,
) -> Celery:
    """A Celery app for the broker of ``settings`` (the app's ``deferred_task.*`` settings, the
    environment winning, as in the web process) with the ``run_durable`` task registered."""
    if not isinstance(settings, DeferredTaskSettings):
        settings = load_deferred_task_settings(settings, environ)
    if not settings.broker_url:
        raise ValueError(
            "no broker: set APP_DEFERRED_TASK_BROKER_URL (or deferred_task.broker_url) to redis://..."
        )
    app = Celery(main)
    app.conf.update(celery_config(settings))
    register_durable_task(app, settings)
    return app


def register_durable_task(app: Celery, settings: DeferredTaskSettings) -> Task:
    claims: list[RedisClaims] = []

    def store() -> RedisClaims:
        if not claims:
            claims.append(RedisClaims(redis_client(settings.broker_url, settings.broker_timeout_seconds),
                                      done_ttl_seconds=settings.idempotency_ttl_seconds))
        return claims[0]

    # shared=False: a shared task would be added to every Celery app of the process (two apps
    # with two brokers, as in tests), each then running the first app's closure.
    @app.task(bind=True, name=TASK_NAME, max_retries=settings.spill_max_retries, acks_late=True,
              shared=False)
    def run_durable(self: Task, message: dict[str, object]) -> str:
        task = SpilledTask.from_message(message)
        with logger.contextualize(request_id=task.request_id):
            return _run(self, task, store(), settings)

    task: Task = run_durable
    return task


def _run(celery_task: Task, task: SpilledTask, claims: RedisClaims,
         settings: DeferredTaskSettings) -> str:
    attempt = celery_task.request.retries + 1
    claim = claims.claim(task.key, task.lease_seconds)
    if claim is Claim.DONE:
        log.info("Durable task {} ({}) already ran: not run again", task.name, task.key)
        return "duplicate"
    if claim is Claim.HELD:
        return _retry(celery_task, task, claims.held_for(task.key) + 0.5, "its key is held by another run",
                      attempt, settings)
    try:
        function = load_function(task.function)
        args, kwargs = decode_payload(task.payload)
    except (TypeError, ValueError) as error:  # cannot ever run: a dead letter at once
        claims.release(task.key)
        _dead_letter(task, attempt, f"cannot be loaded: {error}")
        return "dead"
    started = time.monotonic()
    try:
        call_with_spill_possible(lambda: function(*args, **kwargs))
    except ServiceDown as down:
        claims.release(task.key)
        return _retry(celery_task, task, down.retry_after, str(down), attempt, settings)
    except Exception as error:
        claims.release(task.key)
        log.opt(exception=True).warning("Durable task {} ({}) attempt {} failed", task.name, task.key,
                                        attempt)
        return _retry(celery_task, task, backoff(attempt - 1, settings),
                      f"{type(error).__name__}: {mask_url(str(error))}", attempt, settings)
    if claim is Claim.CLAIMED:
        claims.done(task.key)
    log.info("Durable task {} ({}, spilled: {}) ran on attempt {} in {:.3f}s", task.name, task.key,
             task.reason, attempt, time.monotonic() - started)
    return "done"


def _retry(celery_task: Task, task: SpilledTask, countdown: float, why: str,
           attempt: int, settings: DeferredTaskSettings) -> str:
    if celery_task.request.retries >= settings.spill_max_retries:
        _dead_letter(task, attempt, why)
        return "dead"
    log.info("Durable task {} ({}) attempt {}: {}; retrying in {:.1f}s", task.name, task.key, attempt, why,
             countdown)
    try:
        raise celery_task.retry(countdown=countdown)
    except Retry:
        raise
    except Exception as error:  # the broker refused the retry message
        _dead_letter(task, attempt, f"{why}; and its retry could not be queued: {mask_url(str(error))}")
        return "dead"


def _dead_letter(task: SpilledTask, attempt: int, why: str) -> None:
    log.error("DEAD LETTER: durable task {} (request {}) gave up after {} attempt(s): {}; replay: {}",
              task.name, task.request_id, attempt, why, task.replay())


class CelerySpiller:
    """Publishes spilled tasks to ``run_durable`` on the app's broker, within its timeout."""

    engine = "Celery"

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.task: Task = app.tasks[TASK_NAME]

    def send(self, task: SpilledTask) -> None:
        try:
            self.task.apply_async(
                args=(task.message(),), task_id=task.key, countdown=task.countdown or None, retry=False,
            )
        except Exception as error:
            raise BrokerUnavailable(f"{type(error).__name__}: {mask_url(str(error))}") from None


def build_spill_over(settings: DeferredTaskSettings) -> SpillOver:
    """The web side's spill-over for ``settings`` (called when the app's configuration commits)."""
    app = create_celery_app(settings)
    claims = RedisClaims(redis_client(settings.broker_url, settings.broker_timeout_seconds),
                         done_ttl_seconds=settings.idempotency_ttl_seconds)
    return SpillOver(CelerySpiller(app), claims)

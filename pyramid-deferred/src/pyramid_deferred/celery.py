"""Spill-over to Celery, Redis as the broker: ``pip install pyramid-deferred[celery]``.

The web side (built by ``config.include("pyramid_deferred")`` once ``deferred_task.broker_url``
is set): :class:`CelerySpiller` publishes a spilled task's sealed message (signed, its arguments
encrypted when a key is set: :mod:`pyramid_deferred.durable.message`) with
``apply_async(retry=False)`` and socket timeouts, so a dead broker costs one bounded attempt,
never Celery's connection retries.

The worker side: :func:`create_celery_app` builds a Celery app with the one task,
``pyramid_deferred.run_durable``, whose one argument is the sealed message. It checks the
signature before anything else (a forged message is refused: ERROR, not run, not retried),
claims the task's idempotency key in Redis, finds the function in the registry of declared
durable functions (never an import: a message naming anything else is refused), runs it, and
retries with exponential backoff (or after the breaker's reset timeout for
:class:`~pyramid_deferred.durable.ServiceDown`); after its last retry the message goes to the
dead-letter store (:mod:`pyramid_deferred.durable.dead_letters`).

It also puts ``pyramid_deferred.sweep_outbox`` on Celery beat's schedule: the outbox entries whose
lease ran out (their web process died before their fate was final,
:mod:`pyramid_deferred.durable.outbox`) are sent to ``run_durable`` as they were sealed. Start a
worker with its beat (``-B``; with several workers, run one ``celery beat`` beside them)::

    celery -A yourapp.worker worker -B --pool=solo -l info
    # yourapp/worker.py: app = create_celery_app(settings, imports=("yourapp.durable_tasks",))
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from celery import Celery, Task
from celery.exceptions import Retry
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry as RedisRetry

from pyramid_deferred.core.durable import (
    NotDurableError,
    call_with_spill_possible,
    decode_payload,
    durable_function_paths,
    registered_function,
)
from pyramid_deferred.core.log import get_logger, request_id_var, without_locals
from pyramid_deferred.durable import (
    BrokerUnavailable,
    Claim,
    ServiceDown,
    SpilledTask,
    SpillOver,
)
from pyramid_deferred.durable.dead_letter_store import COMMAND as DEAD_LETTERS_COMMAND
from pyramid_deferred.durable.dead_letter_store import DeadLetterStore
from pyramid_deferred.durable.message import ForgedMessage, MessageCodec, SealedMessage, UndecryptablePayload
from pyramid_deferred.durable.outbox import Outbox, RedisOutbox, resend_expired
from pyramid_deferred.settings import DeferredTaskSettings, load_deferred_task_settings
from pyramid_deferred.values import ConfigError, mask_url

TASK_NAME = "pyramid_deferred.run_durable"
SWEEP_TASK_NAME = "pyramid_deferred.sweep_outbox"
KEY_PREFIX = "pyramid_deferred:durable:"
HELD, DONE = "held", "done"
log = get_logger(__name__)


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
            log.warning("Idempotency key %s could not be claimed (%s): running it anyway", key,
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
            log.warning("Idempotency key %s ran but could not be recorded (%s): a spilled copy may run "
                        "again", key, mask_url(str(error)))

    def release(self, key: str) -> None:
        name = self.prefix + key
        try:
            if self.redis.get(name) == HELD.encode():
                self.redis.delete(name)
        except RedisError as error:
            log.warning("Idempotency key %s could not be released (%s): the retry waits for its lease",
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
    imports: Sequence[str] = (),
    outbox: Outbox | None = None,
) -> Celery:
    """The Celery app of the spill-over, with the ``run_durable`` task registered, and the outbox
    sweep (``pyramid_deferred.sweep_outbox``) on beat's schedule.

    ``settings``: the add-on's settings, or the app's settings mapping (its ``deferred_task.*``
    .ini keys), read as the web process reads them, the ``APP_DEFERRED_TASK_*`` variables of
    ``environ`` (default: ``os.environ``) winning. A broker and a signing key are required.
    ``main``: the Celery app's name (what ``celery`` shows). ``imports``: the modules that declare
    the app's durable functions (``@durable_function``), imported now: a worker runs those and no
    other (the web process imports them with its views; a worker must be told). ``outbox``: the
    web processes' outbox when it is not the broker's Redis (the transactional one,
    ``pyramid_deferred.durable.sql_outbox.SqlOutbox``); by default the broker's Redis, unless
    ``deferred_task.outbox`` is ``off``.
    """
    if not isinstance(settings, DeferredTaskSettings):
        settings = load_deferred_task_settings(settings, environ)
    if not settings.broker_url:
        raise ConfigError(
            "no broker: set APP_DEFERRED_TASK_BROKER_URL (or deferred_task.broker_url) to redis://..."
        )
    if isinstance(imports, str):
        raise TypeError(f"imports must be a sequence of module names, such as ({imports!r},)")
    for module in imports:
        importlib.import_module(module)
    if imports:
        declared = durable_function_paths()
        log.log(logging.INFO if declared else logging.WARNING, "Durable functions this worker runs: %s",
                ", ".join(declared) or "none (no module of imports declares one: every task is refused)")
    app = Celery(main)
    app.conf.update(celery_config(settings))
    register_durable_task(app, settings)
    outbox = outbox if outbox is not None else outbox_for(settings)
    if outbox is not None:
        register_outbox_sweep(app, settings, outbox)
    return app


def outbox_for(settings: DeferredTaskSettings) -> Outbox | None:
    """The outbox in the broker's Redis (``deferred_task.outbox = redis``, the default), or None."""
    if settings.outbox != "redis":
        return None
    return RedisOutbox(redis_client(settings.broker_url, settings.broker_timeout_seconds))


def register_outbox_sweep(app: Celery, settings: DeferredTaskSettings, outbox: Outbox) -> Task:
    """``pyramid_deferred.sweep_outbox`` every ``outbox_sweep_seconds`` on beat's schedule (a sweep
    not picked up within one interval expires: a busy worker never piles them up). Each entry
    goes out as it was sealed: the worker checks its signature like any other message's."""
    spiller: list[CelerySpiller] = []

    @app.task(name=SWEEP_TASK_NAME, shared=False, ignore_result=True)
    def sweep_outbox() -> int:
        if not spiller:
            spiller.append(CelerySpiller(app))
        send = spiller[0].send
        return resend_expired(outbox, lambda key, text: send(json.loads(text)),
                              lease_seconds=settings.lease_seconds)

    interval = settings.outbox_sweep_seconds
    app.conf.beat_schedule = {
        **(app.conf.beat_schedule or {}),
        SWEEP_TASK_NAME: {"task": SWEEP_TASK_NAME, "schedule": interval, "options": {"expires": interval}},
    }
    task: Task = sweep_outbox
    return task


def message_codec(settings: DeferredTaskSettings) -> MessageCodec:
    """The codec of the app's keys (``deferred_task.signing_key``, ``deferred_task.encryption_key``)."""
    return MessageCodec(settings.signing_keys, settings.encryption_keys)


def register_durable_task(app: Celery, settings: DeferredTaskSettings) -> Task:
    worker = DurableWorker(settings, message_codec(settings))

    # shared=False: a shared task would be added to every Celery app of the process (two apps
    # with two brokers, as in tests), each then running the first app's closure.
    @app.task(bind=True, name=TASK_NAME, max_retries=settings.spill_max_retries, acks_late=True,
              shared=False)
    def run_durable(self: Task, message: object) -> str:
        return worker.handle(self, message)

    task: Task = run_durable
    return task


class DurableWorker:
    """What ``run_durable`` does with one delivery of a sealed message: open it (the signature
    first), claim its key, run its declared function, retry or give it up as a dead letter."""

    def __init__(self, settings: DeferredTaskSettings, codec: MessageCodec) -> None:
        self.settings = settings
        self.codec = codec
        self._redis: Redis | None = None

    def redis(self) -> Redis:
        """The broker's Redis (the keys, the dead letters), connected on first use."""
        if self._redis is None:
            self._redis = redis_client(self.settings.broker_url, self.settings.broker_timeout_seconds)
        return self._redis

    def claims(self) -> RedisClaims:
        return RedisClaims(self.redis(), done_ttl_seconds=self.settings.idempotency_ttl_seconds)

    def dead_letters(self) -> DeadLetterStore:
        return DeadLetterStore(self.redis(), ttl_seconds=self.settings.dead_letter_ttl_seconds)

    def handle(self, celery_task: Task, message: object) -> str:
        attempt = celery_task.request.retries + 1
        try:
            task = self.codec.open(message)
        except ForgedMessage as why:
            log.error("Refused a %s message (delivery %s): %s: not run, not retried", TASK_NAME,
                      _shown(celery_task.request.id), why)
            return "refused"
        except UndecryptablePayload as why:  # signed by the app: a JSON object, kept for a replay
            self.dead_letter(cast("SealedMessage", message), why.task, f"was not run: {why}", attempt)
            return "dead"
        token = request_id_var.set(task.request_id)  # the web request's id, on every line of the run
        try:
            return self.run(celery_task, cast("SealedMessage", message), task, attempt)
        finally:
            request_id_var.reset(token)

    def run(self, celery_task: Task, message: SealedMessage, task: SpilledTask, attempt: int) -> str:
        claims = self.claims()
        claim = claims.claim(task.key, task.lease_seconds)
        if claim is Claim.DONE:
            log.info("Durable task %s (%s) already ran: not run again", task.name, task.key)
            return "duplicate"
        if claim is Claim.HELD:
            return self.retry(celery_task, message, task, claims.held_for(task.key) + 0.5,
                              "its key is held by another run", attempt)
        try:
            function = registered_function(task.function)
        except NotDurableError as refused:  # signed, yet not declared here: a worker without its imports
            claims.release(task.key)
            self.dead_letter(message, task, f"was refused: {refused}", attempt)
            return "refused"
        args, kwargs = decode_payload(task.payload)
        started = time.monotonic()
        try:
            call_with_spill_possible(lambda: function(*args, **kwargs))
        except ServiceDown as down:
            claims.release(task.key)
            return self.retry(celery_task, message, task, down.retry_after, str(down), attempt)
        except Exception as error:
            claims.release(task.key)
            why = f"{type(error).__name__}: {mask_url(str(error))}"
            log.warning(
                "Durable task %s (%s, function %s) attempt %d failed: %s", task.name, task.key,
                task.function, attempt, why, exc_info=without_locals(error, mask_url),
            )
            return self.retry(celery_task, message, task, backoff(attempt - 1, self.settings), why, attempt)
        if claim is Claim.CLAIMED:
            claims.done(task.key)
        log.info("Durable task %s (%s, spilled: %s) ran on attempt %d in %.3fs", task.name, task.key,
                 task.reason, attempt, time.monotonic() - started)
        return "done"

    def retry(self, celery_task: Task, message: SealedMessage, task: SpilledTask, countdown: float, why: str,
              attempt: int) -> str:
        if celery_task.request.retries >= self.settings.spill_max_retries:
            self.dead_letter(message, task, f"gave up after {attempt} attempt(s): {why}", attempt)
            return "dead"
        log.info("Durable task %s (%s) attempt %d: %s; retrying in %.1fs", task.name, task.key, attempt,
                 why, countdown)
        try:
            raise celery_task.retry(countdown=countdown)
        except Retry:
            raise
        except Exception as error:  # the broker refused the retry message
            self.dead_letter(message, task, f"gave up after {attempt} attempt(s): {why}; and its retry could "
                             f"not be queued: {type(error).__name__}: {mask_url(str(error))}", attempt)
            return "dead"

    def dead_letter(self, message: SealedMessage, task: SpilledTask, why: str, attempts: int) -> None:
        """Keep the sealed message in the dead-letter store, and say so at ERROR (never its arguments)."""
        try:
            self.dead_letters().add(message, why=why, attempts=attempts)
        except RedisError as error:
            log.error("DEAD LETTER: durable task %s (%s, function %s, spilled: %s) %s; it could not be "
                      "stored (%s): it is LOST", task.name, task.key, task.function, task.reason, why,
                      mask_url(str(error)))
            return
        log.error("DEAD LETTER: durable task %s (%s, function %s, spilled: %s) %s; kept %g day(s) in the "
                  "dead-letter store: replay with `%s replay %s`", task.name, task.key, task.function,
                  task.reason, why, self.settings.dead_letter_ttl_seconds / 86_400, DEAD_LETTERS_COMMAND,
                  task.key)


class CelerySpiller:
    """Publishes sealed messages to ``run_durable`` on the app's broker, within its timeout."""

    engine = "Celery"

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.task: Task = app.tasks[TASK_NAME]

    def send(self, message: SealedMessage, *, countdown: float = 0.0) -> None:
        key = message.get("key")
        try:
            self.task.apply_async(
                args=(message,), task_id=key if isinstance(key, str) else None, countdown=countdown or None,
                retry=False,
            )
        except Exception as error:
            raise BrokerUnavailable(f"{type(error).__name__}: {mask_url(str(error))}") from None


def build_spill_over(settings: DeferredTaskSettings) -> SpillOver:
    """The web side's spill-over for ``settings`` (called when the app's configuration commits),
    with the outbox in the broker's Redis unless ``deferred_task.outbox`` is ``off`` (an app with a
    transactional outbox sets its own: ``config.set_deferred_task_outbox``)."""
    app = create_celery_app(settings)
    redis = redis_client(settings.broker_url, settings.broker_timeout_seconds)
    claims = RedisClaims(redis, done_ttl_seconds=settings.idempotency_ttl_seconds)
    outbox = RedisOutbox(redis) if settings.outbox == "redis" else None
    return SpillOver(CelerySpiller(app), claims, codec=message_codec(settings), outbox=outbox,
                     lease_seconds=settings.lease_seconds)


def _shown(text: object) -> str:
    """Text from a message we could not trust, fit for a log line: ASCII, escaped, at most 100."""
    shown = ascii(text)
    return shown if len(shown) <= 100 else shown[:97] + "..."

"""Settings, declared once: each field names its .ini key, its environment variable, its parser,
its default and its documentation, and that one declaration drives loading, error messages and
the generated settings table (``python -m pyramid_deferred.settings``).

The environment wins over the app's settings (the .ini file). One setting is required with
another: a broker needs a signing key.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from pyramid_deferred.values import (
    MAKE_SIGNING_KEY,
    ConfigError,
    Parser,
    choice_parser,
    int_parser,
    parse_bool,
    parse_broker_url,
    parse_fernet_keys,
    parse_signing_keys,
    ratio_parser,
    seconds_parser,
)

T = TypeVar("T")
S = TypeVar("S")

STRATEGIES = ("auto", "close", "thread")
OUTBOXES = ("redis", "off")
MAX_BUDGET_SECONDS = 86_400.0


class Setting(NamedTuple):
    """What a settings field declares besides its name and type."""

    key: str
    """The app's setting (``.ini`` key)."""
    env: str
    """The environment variable that overrides it."""
    parse: Parser[Any]
    doc: str


def setting(*, key: str, env: str, parse: Parser[T], default: T, doc: str, secret: bool = False) -> T:
    """A dataclass field carrying its :class:`Setting` (typed as its value, as dataclass fields are).

    ``secret``: left out of the settings object's repr (a URL with a password)."""
    declared = Setting(key, env, parse, doc)
    return dataclasses.field(default=default, metadata={"setting": declared}, repr=not secret)


def declared(cls: type[Any]) -> Iterator[tuple[dataclasses.Field[Any], Setting]]:
    """Each field of a settings dataclass with its declaration."""
    for item in dataclasses.fields(cls):
        yield item, item.metadata["setting"]


def read(key: str, env: str, parse: Parser[T], default: T, settings: Mapping[str, Any],
         environ: Mapping[str, str]) -> T:
    """The environment wins over the app's settings; the default applies when neither sets it."""
    if env in environ:
        return parse(environ[env], env)
    if key in settings:
        return parse(str(settings[key]), f"{key} (.ini setting)")
    return default


def load(cls: type[S], settings: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None) -> S:
    """Every field of ``cls`` read and validated now; a bad value raises ConfigError naming it."""
    settings = settings or {}
    environ = os.environ if environ is None else environ
    values = {
        item.name: read(decl.key, decl.env, decl.parse, item.default, settings, environ)
        for item, decl in declared(cls)
    }
    return cls(**values)


@dataclass(frozen=True, slots=True)
class DeferredTaskSettings:
    enabled: bool = setting(
        key="deferred_task.enabled", env="APP_DEFERRED_TASK_ENABLED", parse=parse_bool, default=True,
        doc="false = legacy mode: tasks run inline, before the response is returned, without a budget.",
    )
    budget_seconds: float = setting(
        key="deferred_task.budget_seconds", env="APP_DEFERRED_TASK_BUDGET_SECONDS",
        parse=seconds_parser(minimum=0, maximum=MAX_BUDGET_SECONDS, note=" (0 = unlimited)"),
        default=10.0,
        doc="Time one request's tasks may take after its response; a task whose declared cost does "
        "not fit what is left is skipped (NOTICE).",
    )
    hard_limit_seconds: float = setting(
        key="deferred_task.hard_limit_seconds", env="APP_DEFERRED_TASK_HARD_LIMIT_SECONDS",
        parse=seconds_parser(minimum=0, maximum=MAX_BUDGET_SECONDS, note=" (0 = no hard limit)"),
        default=0.0,
        doc="Seconds a request may live in all, counted from its start (a server's kill timeout); "
        "the budget shrinks to fit. Set for gunicorn sync workers by `pyramid_deferred.gunicorn`.",
    )
    max_tasks: int = setting(
        key="deferred_task.max_tasks", env="APP_DEFERRED_TASK_MAX_TASKS",
        parse=int_parser(minimum=1, maximum=1_000_000), default=1000,
        doc="Tasks one request (one run) may defer, nested ones included; beyond it `defer()` "
        "refuses them, with one WARNING per run and a count in its report. Bounds memory.",
    )
    concurrent_threads: int = setting(
        key="deferred_task.concurrent_threads", env="APP_DEFERRED_TASK_CONCURRENT_THREADS",
        parse=int_parser(minimum=0, maximum=256), default=8,
        doc="Threads per process for tasks deferred with `concurrent=True` (independent I/O): they "
        "run side by side, so a request's batch takes about its longest task, not their sum. "
        "0: such tasks run one after the other, like the others.",
    )
    learned_costs: bool = setting(
        key="deferred_task.learned_costs", env="APP_DEFERRED_TASK_LEARNED_COSTS", parse=parse_bool,
        default=False,
        doc="Let admission against the budget use what a task's recent runs took (the quantile below "
        "x 1.1 of the last 200) when lower than its declared cost, and try a task not yet learned "
        "once per run; the hard limit always uses the declared cost. Off: the declared cost decides.",
    )
    learned_cost_min_samples: int = setting(
        key="deferred_task.learned_cost_min_samples", env="APP_DEFERRED_TASK_LEARNED_COST_MIN_SAMPLES",
        parse=int_parser(minimum=5, maximum=200), default=20,
        doc="Runs of a task name (in this process) before its observed cost may admit it.",
    )
    learned_cost_quantile: float = setting(
        key="deferred_task.learned_cost_quantile", env="APP_DEFERRED_TASK_LEARNED_COST_QUANTILE",
        parse=ratio_parser(minimum=0.5, maximum=1.0), default=0.95,
        doc="Which quantile of a task's recent runs (x 1.1) bounds its observed cost: 0.95 admits a "
        "task whose slow tail is a few per cent; 0.99 keeps the budget tighter.",
    )
    strategy: str = setting(
        key="deferred_task.strategy", env="APP_DEFERRED_TASK_STRATEGY",
        parse=choice_parser(STRATEGIES), default="auto",
        doc="What runs a batch: `auto` picks per server and response so the client never waits; "
        "`close` always inline in the body's close(); `thread` always on the hand-off worker.",
    )
    worker_threads: int = setting(
        key="deferred_task.worker_threads", env="APP_DEFERRED_TASK_WORKER_THREADS",
        parse=int_parser(minimum=1, maximum=64), default=2,
        doc="Threads of the per-process hand-off worker (started on first use).",
    )
    worker_queue_size: int = setting(
        key="deferred_task.worker_queue_size", env="APP_DEFERRED_TASK_WORKER_QUEUE_SIZE",
        parse=int_parser(minimum=1, maximum=100_000), default=100,
        doc="Batches waiting for the hand-off worker; when full, a batch runs inline (back-pressure).",
    )
    shutdown_grace_seconds: float = setting(
        key="deferred_task.shutdown_grace_seconds", env="APP_DEFERRED_TASK_SHUTDOWN_GRACE_SECONDS",
        parse=seconds_parser(minimum=0, maximum=3600), default=10.0,
        doc="At process exit, time the hand-off worker gets to finish; what is left is named at ERROR.",
    )
    request_id: bool = setting(
        key="deferred_task.request_id", env="APP_DEFERRED_TASK_REQUEST_ID", parse=parse_bool,
        default=True,
        doc="Give each request an id (`X-Request-ID` if sane and trusted, else a new one), echo it in the "
        "response and put it on every log record of the request and its tasks.",
    )
    trust_request_id_header: bool = setting(
        key="deferred_task.trust_request_id_header", env="APP_DEFERRED_TASK_TRUST_REQUEST_ID_HEADER",
        parse=parse_bool, default=True,
        doc="Take the request id from an incoming `X-Request-ID` (letters, digits and `-_.@:`, at most "
        "128, else a new one). false: always make a new one, for an edge that passes clients' "
        "headers through unchecked (a client could then pick the id its lines are filed under).",
    )
    exit_on_sigterm: bool = setting(
        key="deferred_task.exit_on_sigterm", env="APP_DEFERRED_TASK_EXIT_ON_SIGTERM", parse=parse_bool,
        default=True,
        doc="Where nothing handles SIGTERM (pserve with waitress), make it a normal exit so the "
        "hand-off worker drains; servers with their own handler (gunicorn, uWSGI) are left alone.",
    )

    broker_url: str = setting(
        key="deferred_task.broker_url", env="APP_DEFERRED_TASK_BROKER_URL", parse=parse_broker_url,
        default="", secret=True,
        doc="Redis broker of the Celery spill-over (`pyramid-deferred[celery]`, docs/durable.md): durable "
        "tasks that are skipped, fail, find their service down or are still queued at exit go to "
        "Celery instead of being lost. Empty: spill-over off. Never logged (it may hold a password).",
    )
    broker_timeout_seconds: float = setting(
        key="deferred_task.broker_timeout_seconds", env="APP_DEFERRED_TASK_BROKER_TIMEOUT_SECONDS",
        parse=seconds_parser(minimum=0.01, maximum=30), default=1.0,
        doc="Longest a spill (or an idempotency-key check) waits on the broker; after a failure, "
        "spills fail at once for 5 s, each named at ERROR (key, name, function, never its arguments).",
    )
    spill_max_retries: int = setting(
        key="deferred_task.spill_max_retries", env="APP_DEFERRED_TASK_SPILL_MAX_RETRIES",
        parse=int_parser(minimum=0, maximum=100), default=10,
        doc="Retries of a spilled task on the Celery worker; after the last one it goes to the "
        "dead-letter store (Redis) and is named at ERROR, without its arguments.",
    )
    spill_backoff_seconds: float = setting(
        key="deferred_task.spill_backoff_seconds", env="APP_DEFERRED_TASK_SPILL_BACKOFF_SECONDS",
        parse=seconds_parser(minimum=0.01, maximum=3600), default=2.0,
        doc="First retry delay of a spilled task that failed; doubled at each retry (a service "
        "known to be down: its breaker's reset timeout instead).",
    )
    spill_backoff_max_seconds: float = setting(
        key="deferred_task.spill_backoff_max_seconds", env="APP_DEFERRED_TASK_SPILL_BACKOFF_MAX_SECONDS",
        parse=seconds_parser(minimum=0.01, maximum=86_400), default=600.0,
        doc="Longest delay between two retries of a spilled task.",
    )
    outbox: str = setting(
        key="deferred_task.outbox", env="APP_DEFERRED_TASK_OUTBOX", parse=choice_parser(OUTBOXES),
        default="redis",
        doc="With a broker set: `redis` records each request's durable tasks in the broker's Redis before "
        "its response leaves (one round trip; none for requests without durable tasks), so a crashed "
        "process's tasks are re-sent by the worker's sweep; `off`: spills only. An app on pyramid_tm "
        "and zope.sqlalchemy may use its database instead (`config.set_deferred_task_outbox`).",
    )
    lease_seconds: float = setting(
        key="deferred_task.lease_seconds", env="APP_DEFERRED_TASK_LEASE_SECONDS",
        parse=seconds_parser(minimum=1, maximum=86_400), default=60.0,
        doc="How long a process may hold a durable task (its outbox entry; a running claim: at least "
        "twice its declared cost) before another may take it over: a crashed process's tasks run "
        "on a Celery worker within this plus the sweep's interval.",
    )
    outbox_sweep_seconds: float = setting(
        key="deferred_task.outbox_sweep_seconds", env="APP_DEFERRED_TASK_OUTBOX_SWEEP_SECONDS",
        parse=seconds_parser(minimum=0.5, maximum=3600), default=15.0,
        doc="How often Celery beat runs the outbox sweep (`pyramid_deferred.sweep_outbox`), which re-sends "
        "the entries whose lease ran out.",
    )
    idempotency_ttl_seconds: float = setting(
        key="deferred_task.idempotency_ttl_seconds", env="APP_DEFERRED_TASK_IDEMPOTENCY_TTL_SECONDS",
        parse=seconds_parser(minimum=60, maximum=90 * 86_400), default=7 * 86_400.0,
        doc="How long Redis remembers that a durable task's key ran, so that a copy is not run again.",
    )
    signing_keys: tuple[str, ...] = setting(
        key="deferred_task.signing_key", env="APP_DEFERRED_TASK_SIGNING_KEY", parse=parse_signing_keys,
        default=(), secret=True,
        doc="HMAC-SHA256 key of the spilled tasks' messages: the Celery worker runs only messages "
        "signed with it. Required with a broker; the same on web processes and workers. Several, "
        "comma-separated: the first signs, any verifies (rotation). Never logged.",
    )
    encryption_keys: tuple[str, ...] = setting(
        key="deferred_task.encryption_key", env="APP_DEFERRED_TASK_ENCRYPTION_KEY", parse=parse_fernet_keys,
        default=(), secret=True,
        doc="Fernet key(s) that encrypt a spilled task's arguments at rest (broker, dead letters, "
        "outbox). Empty: arguments travel in clear. Several, comma-separated: the first encrypts, "
        "any decrypts (rotation). Never logged.",
    )
    dead_letter_ttl_seconds: float = setting(
        key="deferred_task.dead_letter_ttl_seconds", env="APP_DEFERRED_TASK_DEAD_LETTER_TTL_SECONDS",
        parse=seconds_parser(minimum=60, maximum=366 * 86_400), default=30 * 86_400.0,
        doc="How long a dead letter (a spilled task that gave up) stays in Redis for "
        "`pyramid-deferred-dead-letters` to list, replay or drop it.",
    )

    def __post_init__(self) -> None:
        if self.broker_url and not self.signing_keys:
            raise ConfigError(
                "deferred_task.signing_key (APP_DEFERRED_TASK_SIGNING_KEY) is required when "
                "deferred_task.broker_url is set: the Celery worker runs only messages signed with it. "
                f"Make one with {MAKE_SIGNING_KEY} and give the web processes and the workers the same"
            )
        if set(self.signing_keys) & set(self.encryption_keys):
            raise ConfigError(
                "deferred_task.signing_key (APP_DEFERRED_TASK_SIGNING_KEY) and deferred_task.encryption_key "
                "(APP_DEFERRED_TASK_ENCRYPTION_KEY) share a key: give each its own"
            )


def load_deferred_task_settings(
    settings: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> DeferredTaskSettings:
    """Read and validate every setting; a bad value raises ConfigError naming it."""
    return load(DeferredTaskSettings, settings, environ)


def settings_table(*classes: type[Any]) -> str:
    """The Markdown table of the given settings dataclasses (the docs' generated reference)."""
    lines = [
        "| .ini key | environment variable | default | allowed | what it does |",
        "|---|---|---|---|---|",
    ]
    for cls in classes:
        for item, decl in declared(cls):
            default = (str(item.default).lower() if isinstance(item.default, bool)
                       else ",".join(item.default) if isinstance(item.default, tuple) else f"{item.default}")
            lines.append(
                f"| `{decl.key}` | `{decl.env}` | `{default}` | {decl.parse.allowed} | {decl.doc} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_table(DeferredTaskSettings))

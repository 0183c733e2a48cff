"""What the processes write to Redis for the shared page, and what the page accepts back: JSON.

- a **run**: the page's own shape (:func:`~pyramid_deferred.dashboard.recorder.run_json`), with
  the host and pid of the process that ran it;
- a **name's statistics**: counts by outcome, the latest measured times, declared cost, priority;
- a **worker's counters**: runs seen, published, dropped, names evicted, when it started;
- a **worker's id**, ``<host>:<pid>:<nonce>``: its key, and where the page takes host and pid from.

Whatever is read back is hostile: anyone who can write to that Redis can forge an entry. Each
decoder checks types, ranges and lengths, and answers None for an entry it cannot vouch for (the
page counts those and says so); text becomes one printable line, cut to its limit. The page shows
every string with ``textContent``, never as markup.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from pyramid_deferred.dashboard.recorder import (
    OUTCOMES,
    NameSample,
    RunView,
    TaskView,
    run_json,
    safe_text,
)

MAX_RUN_BYTES = 256 * 1024
MAX_NAME_BYTES = 8 * 1024
MAX_META_BYTES = 1024
MAX_TASKS_PER_RUN = 500
"""Tasks of one run that are published; the rest are counted (``tasks_cut``) and not shown."""
PUBLISHED_SAMPLES = 128
"""Measured times per task name each worker publishes (its latest): the merged percentiles'
window is this many per worker."""
MAX_TEXT = 200
"""Request lines and task names (``defer()`` refuses longer names)."""
MAX_ERROR = 100
MAX_COUNT = 2**53
MAX_SECONDS = 10_000_000.0
MAX_EPOCH = 32_503_680_000.0
"""Year 3000: a time past it is forged."""
MAX_PRIORITY = 2**31
PID_MAX = 4_194_304
"""Linux's largest pid (``/proc/sys/kernel/pid_max`` cannot go higher)."""
HOST = re.compile(r"[A-Za-z0-9.-]{1,64}")
WORKER_ID = re.compile(r"(?P<host>[A-Za-z0-9.-]{1,64}):(?P<pid>[0-9]{1,7}):(?P<nonce>[0-9a-f]{8})")
REQUEST_ID = re.compile(r"[A-Za-z0-9._@:-]{1,128}")
TRIGGER = re.compile(r"[a-z_]{1,40}")
ERROR_NAME = re.compile(r"[^\W\d][\w.]{0,99}")
"""An exception type's name: letters of any alphabet, digits, ``_`` and ``.``, no digit first."""


class Invalid(ValueError):
    """A field read back from Redis is not what a process of this page writes."""


@dataclass(frozen=True, slots=True)
class WorkerId:
    host: str
    pid: int
    nonce: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.nonce}"


@dataclass(frozen=True, slots=True)
class WorkerMeta:
    started_at: float
    total_runs: int
    published: int
    dropped: int
    evicted_task_names: int


@dataclass(frozen=True, slots=True)
class NameRecord:
    """One worker's statistics of one task name, as read back."""

    counts: dict[str, int]
    durations: tuple[float, ...]
    declared_cost: float
    priority: int


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def encode_run(run: RunView) -> bytes:
    """The run as the page shows it; its tasks past ``MAX_TASKS_PER_RUN`` counted, not sent."""
    data = run_json(run)
    cut = max(0, len(data["tasks"]) - MAX_TASKS_PER_RUN)
    if cut:
        data["tasks"] = data["tasks"][:MAX_TASKS_PER_RUN]
        data["tasks_cut"] = run.tasks_cut + cut
    return _dumps(data)


def encode_name(sample: NameSample) -> bytes:
    return _dumps({
        "counts": sample.counts,
        "durations": [round(value, 6) for value in sample.durations[-PUBLISHED_SAMPLES:]],
        "declared_cost_seconds": sample.declared_cost,
        "priority": sample.priority,
    })


def encode_meta(meta: WorkerMeta) -> bytes:
    return _dumps({
        "started_at": meta.started_at, "total_runs": meta.total_runs, "published": meta.published,
        "dropped": meta.dropped, "evicted_task_names": meta.evicted_task_names,
    })


def decode_worker_id(raw: object) -> WorkerId | None:
    text = _ascii(raw, 100)
    match = WORKER_ID.fullmatch(text) if text is not None else None
    if match is None or not 1 <= int(match["pid"]) <= PID_MAX:
        return None
    return WorkerId(match["host"], int(match["pid"]), match["nonce"])


def decode_run(raw: object) -> RunView | None:
    data = _json(raw, MAX_RUN_BYTES)
    try:
        if not isinstance(data, dict):
            raise Invalid("not an object")
        tasks = data["tasks"]
        if not isinstance(tasks, list) or len(tasks) > MAX_TASKS_PER_RUN:
            raise Invalid("tasks")
        return RunView(
            number=_int(data["number"], 0, MAX_COUNT),
            pid=_int(data["pid"], 1, PID_MAX),
            request_id=_matching(data["request_id"], REQUEST_ID),
            request=_text(data["request"], allow_empty=True),
            status=None if data["status"] is None else _int(data["status"], 100, 999),
            trigger=_matching(data["trigger"], TRIGGER),
            finished_at=_number(data["finished_at"], MAX_EPOCH),
            wait_seconds=_optional_seconds(data["wait_seconds"]),
            elapsed_seconds=_number(data["elapsed_seconds"], MAX_SECONDS),
            budget_seconds=_optional_seconds(data["budget_seconds"]),
            refused=_int(data["refused"], 0, MAX_COUNT),
            tasks=tuple(_task(task) for task in tasks),
            host=_matching(data["host"], HOST),
            tasks_cut=_int(data.get("tasks_cut", 0), 0, MAX_COUNT),
        )
    except (Invalid, KeyError):
        return None


def _task(raw: object) -> TaskView:
    if not isinstance(raw, dict):
        raise Invalid("task")
    outcome = raw["outcome"]
    if outcome not in OUTCOMES:
        raise Invalid("outcome")
    error = raw["error"]
    return TaskView(
        name=_text(raw["name"]),
        priority=_int(raw["priority"], -MAX_PRIORITY, MAX_PRIORITY),
        max_cost_seconds=_number(raw["max_cost_seconds"], MAX_SECONDS),
        outcome=outcome,
        start_seconds=_optional_seconds(raw["start_seconds"]),
        duration_seconds=_optional_seconds(raw["duration_seconds"]),
        error=None if error is None else _matching(error, ERROR_NAME),
    )


def decode_name(field: object, raw: object, prefix: bytes) -> tuple[str, NameRecord] | None:
    """A ``name:<task name>`` field of a worker's hash and its value."""
    if not isinstance(field, bytes) or not field.startswith(prefix):
        return None
    data = _json(raw, MAX_NAME_BYTES)
    try:
        name = _text(_utf8(field[len(prefix):], MAX_TEXT * 4))
        if not isinstance(data, dict):
            raise Invalid("not an object")
        counts = data["counts"]
        durations = data["durations"]
        if not isinstance(counts, dict) or not set(counts) <= set(OUTCOMES):
            raise Invalid("counts")
        if not isinstance(durations, list) or len(durations) > PUBLISHED_SAMPLES:
            raise Invalid("durations")
        return name, NameRecord(
            counts={outcome: _int(counts.get(outcome, 0), 0, MAX_COUNT) for outcome in OUTCOMES},
            durations=tuple(_number(value, MAX_SECONDS) for value in durations),
            declared_cost=_number(data["declared_cost_seconds"], MAX_SECONDS),
            priority=_int(data["priority"], -MAX_PRIORITY, MAX_PRIORITY),
        )
    except (Invalid, KeyError):
        return None


def decode_meta(raw: object) -> WorkerMeta | None:
    data = _json(raw, MAX_META_BYTES)
    try:
        if not isinstance(data, dict):
            raise Invalid("not an object")
        return WorkerMeta(
            started_at=_number(data["started_at"], MAX_EPOCH),
            total_runs=_int(data["total_runs"], 0, MAX_COUNT),
            published=_int(data["published"], 0, MAX_COUNT),
            dropped=_int(data["dropped"], 0, MAX_COUNT),
            evicted_task_names=_int(data["evicted_task_names"], 0, MAX_COUNT),
        )
    except (Invalid, KeyError):
        return None


def _json(raw: object, limit: int) -> Any:
    """The JSON in ``raw`` (bytes of at most ``limit``), or None; nesting too deep for the parser
    (``[[[[...``) is refused like any other bad entry."""
    if not isinstance(raw, bytes) or len(raw) > limit:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _utf8(raw: bytes, limit: int) -> str:
    if len(raw) > limit:
        raise Invalid("too long")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("not UTF-8") from None


def _ascii(raw: object, limit: int) -> str | None:
    if not isinstance(raw, bytes) or len(raw) > limit or not raw.isascii():
        return None
    return raw.decode("ascii")


def _int(value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid("not a whole number in range")
    return value


def _number(value: object, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("not a number")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= high:
        raise Invalid("out of range")
    return number


def _optional_seconds(value: object) -> float | None:
    return None if value is None else _number(value, MAX_SECONDS)


def _text(value: object, *, allow_empty: bool = False) -> str:
    """A name or a request line: one printable line of at most ``MAX_TEXT`` characters."""
    if not isinstance(value, str) or len(value) > MAX_TEXT or (not value and not allow_empty):
        raise Invalid("text")
    return safe_text(value, MAX_TEXT)


def _matching(value: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise Invalid("does not match")
    return value

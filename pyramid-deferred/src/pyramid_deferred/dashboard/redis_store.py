"""The shared page's data in Redis: its keys, one pipelined write per flush, one bounded read per poll.

Keys (all under ``pyramid_deferred:dashboard:``, each with the TTL ``dashboard.redis_ttl_seconds``,
renewed by every write):

- ``runs``: a stream capped at ``dashboard.recent_runs`` entries (``XADD ... MAXLEN``), one per
  run, field ``run``: the run's JSON (:mod:`~pyramid_deferred.dashboard.wire`);
- ``workers``: a sorted set of worker ids (``<host>:<pid>:<nonce>``) scored by their last write
  (epoch seconds); members older than the TTL are removed, and at most ``MAX_WORKERS`` are kept;
- ``worker:<worker id>``: a hash per process, field ``meta`` (its counters) and one field
  ``name:<task name>`` per task name (at most ``dashboard.max_task_names``).

Reads are bounded on the server's side: ``XREVRANGE ... COUNT``, ``ZREVRANGEBYSCORE ... LIMIT``, and
``HRANDFIELD key <max names + 2> WITHVALUES``, which returns the whole hash when it is no larger,
and tells a hash that is (forged) by its answer's length. Needs Redis 6.2 or later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from pyramid_deferred.dashboard.recorder import RunView
from pyramid_deferred.dashboard.wire import (
    NameRecord,
    WorkerId,
    WorkerMeta,
    decode_meta,
    decode_name,
    decode_run,
    decode_worker_id,
)

KEY_PREFIX = "pyramid_deferred:dashboard:"
RUNS_KEY = KEY_PREFIX + "runs"
WORKERS_KEY = KEY_PREFIX + "workers"
WORKER_KEY_PREFIX = KEY_PREFIX + "worker:"
RUN_FIELD = b"run"
META_FIELD = b"meta"
NAME_FIELD_PREFIX = b"name:"
MAX_WORKERS = 64
"""Processes the page reads (the latest to write); more are dropped from the set."""
TIMEOUT_SECONDS = 0.5
"""Longest any one Redis call waits (connecting, sending, reading), the page's and the publisher's."""

Failure = (RedisError, OSError)
"""What a Redis that is down, slow or refusing raises (timeouts included)."""


def connect(url: str) -> Redis:
    """A client that fails fast and never retries (a retry is the next flush, or the next poll)."""
    return Redis.from_url(url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS,
                          retry=Retry(NoBackoff(), 0))


def worker_key(worker: WorkerId) -> str:
    return f"{WORKER_KEY_PREFIX}{worker}"


@dataclass(frozen=True, slots=True)
class Publication:
    """One flush of one process: written in one round trip."""

    worker: WorkerId
    now: float
    """Epoch seconds: the worker's score in ``workers``."""
    meta: bytes
    runs: Sequence[bytes] = ()
    names: Mapping[str, bytes] = field(default_factory=dict)
    dropped_names: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class WorkerData:
    worker: WorkerId
    last_seen: float
    meta: WorkerMeta
    names: dict[str, NameRecord]


@dataclass(frozen=True, slots=True)
class SharedData:
    runs: list[RunView]
    """Newest first."""
    workers: list[WorkerData]
    ignored: int
    """Entries read back that no process of this page could have written (forged, or cut)."""


class SharedStore:
    """Writes and reads the page's keys; ``client`` is made by :func:`connect` (or a test's)."""

    def __init__(self, client: Redis, *, ttl_seconds: float, max_runs: int, max_task_names: int) -> None:
        self.client = client
        self.ttl = max(1, int(ttl_seconds))
        self.max_runs = max_runs
        self.max_task_names = max_task_names

    def __repr__(self) -> str:  # never the client: its pool knows the URL
        return f"SharedStore(ttl={self.ttl}, max_runs={self.max_runs}, max_task_names={self.max_task_names})"

    def write(self, publication: Publication) -> bool:
        """One pipelined round trip; True when the worker's hash was new (Redis lost it, or this is
        the first write), so that the next flush rewrites every name."""
        key = worker_key(publication.worker)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, META_FIELD, publication.meta)
        if publication.names:
            pipe.hset(key, mapping={NAME_FIELD_PREFIX + name.encode(): value
                                    for name, value in publication.names.items()})
        if publication.dropped_names:
            pipe.hdel(key, *[NAME_FIELD_PREFIX + name.encode() for name in publication.dropped_names])
        pipe.expire(key, self.ttl)
        for run in publication.runs:
            pipe.xadd(RUNS_KEY, {RUN_FIELD: run}, maxlen=self.max_runs, approximate=False)
        if publication.runs:
            pipe.expire(RUNS_KEY, self.ttl)
        pipe.zadd(WORKERS_KEY, {str(publication.worker): publication.now})
        pipe.zremrangebyscore(WORKERS_KEY, "-inf", f"({publication.now - self.ttl}")
        pipe.zremrangebyrank(WORKERS_KEY, 0, -(MAX_WORKERS + 1))
        pipe.expire(WORKERS_KEY, self.ttl)
        answers = pipe.execute()
        return bool(answers[0])

    def read(self, now: float) -> SharedData:
        """The latest runs and every live worker's statistics, in two round trips; an entry that
        does not decode is counted in ``ignored`` (a key of the wrong type too), never raised."""
        pipe = self.client.pipeline(transaction=False)
        pipe.xrevrange(RUNS_KEY, count=self.max_runs)
        pipe.zrevrangebyscore(WORKERS_KEY, "+inf", now - self.ttl, start=0, num=MAX_WORKERS, withscores=True)
        entries, members = pipe.execute(raise_on_error=False)
        ignored = 0
        runs: list[RunView] = []
        for entry in _listed(entries):
            run = _run_of(entry)
            if run is None:
                ignored += 1
            else:
                runs.append(run)
        ignored += int(isinstance(entries, Exception)) + int(isinstance(members, Exception))
        seen: list[tuple[WorkerId, float]] = []
        for member in _listed(members):
            worker, score = _member_of(member)
            if worker is None or not 0 <= score <= now + self.ttl:
                ignored += 1
            else:
                seen.append((worker, score))
        workers, unreadable = self._workers(seen)
        return SharedData(runs, workers, ignored + unreadable)

    def _workers(self, seen: list[tuple[WorkerId, float]]) -> tuple[list[WorkerData], int]:
        if not seen:
            return [], 0
        limit = self.max_task_names + 2  # meta, the names, and one more: a hash that is too large
        pipe = self.client.pipeline(transaction=False)
        for worker, _ in seen:
            pipe.hrandfield(worker_key(worker), limit, withvalues=True)
        answers = pipe.execute(raise_on_error=False)
        workers: list[WorkerData] = []
        ignored = 0
        for (worker, last_seen), answer in zip(seen, answers, strict=True):
            flat = _listed(answer)
            if not flat and not isinstance(answer, Exception):
                continue  # its hash expired since the worker's last write: gone, not forged
            if isinstance(answer, Exception) or len(flat) >= 2 * limit:
                ignored += 1
                continue
            fields = dict(zip(flat[0::2], flat[1::2], strict=True))
            meta = decode_meta(fields.pop(META_FIELD, None))
            if meta is None:
                ignored += 1
                continue
            names: dict[str, NameRecord] = {}
            for name_field, value in fields.items():
                decoded = decode_name(name_field, value, NAME_FIELD_PREFIX)
                if decoded is None:
                    ignored += 1
                else:
                    names[decoded[0]] = decoded[1]
            workers.append(WorkerData(worker, last_seen, meta, names))
        return workers, ignored


def _listed(answer: object) -> list[object]:
    return list(answer) if isinstance(answer, list) else []


def _member_of(member: object) -> tuple[WorkerId | None, float]:
    """A ``workers`` member with its score (epoch seconds of its last write)."""
    if not isinstance(member, tuple | list) or len(member) != 2 or not isinstance(member[1], float):
        return None, 0.0
    return decode_worker_id(member[0]), member[1]


def _run_of(entry: object) -> RunView | None:
    """A stream entry is ``(id, {field: value})``."""
    if not isinstance(entry, tuple | list) or len(entry) != 2 or not isinstance(entry[1], dict):
        return None
    return decode_run(entry[1].get(RUN_FIELD))

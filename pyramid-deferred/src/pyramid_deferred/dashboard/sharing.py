"""The live page for every worker: each process publishes to Redis, the page reads them all back.

Imported by ``pyramid_deferred.dashboard`` only once a Redis URL is configured
(``dashboard.redis_url``, else ``deferred_task.broker_url``): without one, neither this module nor
the Redis client is imported, and the page shows its own process as before.

A poll reads Redis (two round trips, each bounded by ``TIMEOUT_SECONDS``) and merges the workers
(:mod:`~pyramid_deferred.dashboard.merge`). When Redis does not answer, the page still does: it
shows this process's own data, says why, and does not try Redis again for ``READ_RETRY_SECONDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pyramid_deferred.dashboard.merge import merge_tasks
from pyramid_deferred.dashboard.outage import Outage, describe
from pyramid_deferred.dashboard.publisher import HEARTBEAT_SECONDS, Publisher
from pyramid_deferred.dashboard.recorder import Recorder, run_json
from pyramid_deferred.dashboard.redis_store import Failure, SharedData, SharedStore, connect
from pyramid_deferred.values import ConfigError

READ_RETRY_SECONDS = 5.0
SILENT_SECONDS = 3 * HEARTBEAT_SECONDS
"""A worker that has not written for this long has stopped, or cannot reach Redis."""


class Sharing:
    """This process's publisher and the page's reader, for one app. ``source`` names the setting
    the URL came from (for errors); the URL itself is kept by the client only, shown nowhere."""

    def __init__(
        self,
        url: str,
        source: str,
        recorder: Recorder,
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        start_thread: bool = True,
    ) -> None:
        try:
            client = connect(url)
        except ValueError:  # its message may quote the URL: not shown
            raise ConfigError(f"{source} (value hidden) is not a URL the Redis client can read; allowed: "
                              "redis://[[user]:password@]host[:port][/db] or rediss://...") from None
        self.source = source
        self.recorder = recorder
        self.clock = clock
        self.wall = wall
        self.store = SharedStore(client, ttl_seconds=ttl_seconds, max_runs=recorder.runs.maxlen or 1,
                                 max_task_names=recorder.max_task_names)
        self.outage = Outage(clock=clock)
        self.publisher = Publisher(self.store, recorder, self.outage, clock=clock, wall=wall,
                                   start_thread=start_thread)
        self._read_retry_at = float("-inf")
        self._read_error = ""
        recorder.sink = self.publisher.submit

    def __repr__(self) -> str:
        return f"Sharing(source={self.source!r}, store={self.store!r}, publisher={self.publisher!r})"

    def snapshot(self) -> dict[str, Any]:
        """What the page shows: every worker's data, or this process's with the reason."""
        self.publisher.adopt()
        now = self.clock()
        if now >= self._read_retry_at:
            try:
                return self._merged(self.store.read(self.wall()))
            except Failure as error:
                self._read_retry_at = now + READ_RETRY_SECONDS
                self._read_error = describe(error)
        return {
            **self.recorder.snapshot(),
            **self._publishing(shared=False),
            "scope": f"Redis did not answer ({self._read_error}): this answer shows worker process "
            f"{self.publisher.pid} only, until it does (tried again every {READ_RETRY_SECONDS:g} s).",
            "partial": "Redis unreachable: one process only",
            "pids": [self.publisher.pid],
            "workers": [self._this_worker()],
            "ignored_entries": 0,
        }

    def _merged(self, data: SharedData) -> dict[str, Any]:
        now = self.wall()
        workers = [{
            "pid": w.worker.pid, "host": w.worker.host, "seen_seconds_ago": max(0.0, now - w.last_seen),
            "started_at": w.meta.started_at, "total_runs": w.meta.total_runs, "published": w.meta.published,
            "dropped": w.meta.dropped, "silent": now - w.last_seen > SILENT_SECONDS,
            "this": w.worker == self.publisher.worker,
        } for w in sorted(data.workers, key=lambda w: (w.worker.host, w.worker.pid))]
        pids = sorted({w.worker.pid for w in data.workers})
        silent = [f"pid {w['pid']}" for w in workers if w["silent"]]
        problems = []
        if self.outage.down:
            problems.append(f"this process (pid {self.publisher.pid}) cannot publish: {self.outage.error}")
        if silent:
            problems.append(f"not heard from for over {SILENT_SECONDS:g} s: {', '.join(silent)} (stopped, "
                            "or cut off from Redis); their figures stay until their keys expire")
        return {
            "runs": [run_json(run) for run in data.runs],
            "tasks": merge_tasks(data.workers),
            "total_runs": sum(w.meta.total_runs for w in data.workers),
            "evicted_task_names": sum(w.meta.evicted_task_names for w in data.workers),
            **self._publishing(shared=True),
            "scope": f"All workers: the {len(workers)} process(es) that wrote to Redis within the last "
            f"{self.store.ttl} s (pids {', '.join(map(str, pids)) or 'none yet'}); this answer is from "
            f"pid {self.publisher.pid}. A run shows about a second after it ends.",
            "partial": "; ".join(problems) or None,
            "pids": pids,
            "workers": workers,
            "ignored_entries": data.ignored,
        }

    def _publishing(self, *, shared: bool) -> dict[str, Any]:
        return {"shared": shared, "publishing": {
            "published": self.publisher.published, "dropped": self.publisher.dropped,
            "pending": self.publisher.pending, "redis_down": self.outage.down,
        }}

    def _this_worker(self) -> dict[str, Any]:
        return {"pid": self.publisher.pid, "host": self.recorder.host, "seen_seconds_ago": 0.0,
                "started_at": self.publisher.started_at, "total_runs": self.recorder.total_runs,
                "published": self.publisher.published, "dropped": self.publisher.dropped,
                "silent": False, "this": True}

    def close(self) -> None:
        self.publisher.close()

"""One request's deferred work, and the guarantee that it is run exactly once."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from loguru import logger

from app.deferred_task import DeferredTaskRunner, RunReport


@dataclass
class RequestBatch:
    """Binds a request's runner to the moment it must run; captured by value, not looked up later.

    By the time the server calls ``close()`` the request's threadlocals are gone, so the hook
    keeps the runner object itself here.
    """

    runner: DeferredTaskRunner
    started: float = field(default_factory=time.monotonic)
    request_failed: bool = False
    scheduled: bool = False
    """True once the run is attached to the response's close(); the safety net then stays out."""
    _done: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run_once(self) -> RunReport | None:
        """Run the batch unless it already ran; never lets an ``Exception`` reach the server."""
        with self._lock:
            if self._done:
                return None
            self._done = True
        try:
            return self.runner.run(request_failed=self.request_failed)
        except Exception:
            logger.bind(channel="DEFERRED_TASK").opt(exception=True).error("Deferred task run failed")
            return None

"""One request's deferred work, and the guarantee that it is run exactly once."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger

from app.deferred_task import DeferredTaskRunner, RunReport
from app.deferred_task.log import deferred_task_logger
from hooks.observers import ReportObserver, notify_observers
from hooks.request_id import new_request_id


@dataclass
class RequestBatch:
    """Binds a request's runner to the moment it must run; captured by value, not looked up later.

    By the time the server calls ``close()`` the request's threadlocals are gone, and a hand-off
    runs on another thread: the hook keeps the runner object and a copy of the request's context
    here, so tasks that look up ``container.deferred_task()`` still find their own request's runner.
    The request id (put on every log line of the run) and the report observers travel with it too.
    """

    runner: DeferredTaskRunner
    hard_limit_seconds: float = 0.0
    """Seconds the request may live in total (a server's kill timeout); 0 = no hard limit."""
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    request_id: str = field(default_factory=new_request_id)
    observers: tuple[ReportObserver, ...] = ()
    request_failed: bool = False
    scheduled: bool = False
    """True once the run is attached to a trigger after the response; the safety net stays out."""
    context: contextvars.Context | None = None
    trigger: str = "a direct call"
    """What ran the batch (close, thread, uwsgi, inline...): logged at DEBUG when it starts."""
    _done: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.started:
            self.started = self.clock()

    def capture_context(self) -> None:
        self.context = contextvars.copy_context()

    def ceiling_seconds(self) -> float | None:
        """What the hard limit leaves of this request's life, right now (the spec's table)."""
        if not self.hard_limit_seconds:
            return None
        return self.hard_limit_seconds - (self.clock() - self.started)

    def pending_names(self) -> list[str]:
        """Tasks that have not run yet; one still running (at shutdown) comes first, marked so."""
        current = self.runner.current_task
        running = [f"{current.name} (still running)"] if current is not None else []
        return running + [task.name for task in self.runner.pending()]

    def run_once(self) -> RunReport | None:
        """Run the batch unless it already ran; never lets an ``Exception`` reach the server.

        Every log record written during the run (the runner's, the tasks', the observers')
        carries ``extra["request_id"]``.
        """
        with self._lock:
            if self._done:
                return None
            self._done = True
        if self.context is not None:
            return self.context.run(self._run)
        return self._run()

    def _run(self) -> RunReport | None:
        with logger.contextualize(request_id=self.request_id):
            if self.runner.has_tasks():
                # lazy: sorting and joining the queue only happen if a sink takes DEBUG records
                deferred_task_logger.opt(lazy=True).debug(
                    "Running {} deferred task(s) via {}: {}",
                    lambda: len(self.pending_names()),
                    lambda: self.trigger,
                    lambda: ", ".join(self.pending_names()),
                )
            try:
                report = self.runner.run(
                    ceiling_seconds=self.ceiling_seconds(), request_failed=self.request_failed
                )
            except Exception:
                deferred_task_logger.opt(exception=True).error("Deferred task run failed")
                return None
            notify_observers(self, report)
            return report

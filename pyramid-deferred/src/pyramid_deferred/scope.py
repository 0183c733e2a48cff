"""Which runner ``defer()`` reaches: the current request's, or an explicit scope's, never a silent one.

While a request is handled its runner is found through Pyramid's current request (nothing is set
per request); while a batch runs, through the batch set here for its run; inside
:func:`deferred_scope`, through the scope's runner. So code that has no ``request`` (a service, a
dependency-injector provider: ``providers.Callable(pyramid_deferred.current_runner)``) reaches the
right runner. Outside of all three, :func:`current_runner` raises instead of handing out a runner
nobody will run.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Protocol

from pyramid_deferred.core import DeferredTaskRunner


class RunningBatch(Protocol):
    """What a batch running on this thread offers (``pyramid_deferred.batch.RequestBatch``)."""

    runner: DeferredTaskRunner
    request_id: str

_current: ContextVar[DeferredTaskRunner | None] = ContextVar("pyramid_deferred.current_runner", default=None)
"""The runner of the enclosing :func:`deferred_scope`."""
_running_batch: ContextVar[RunningBatch | None] = ContextVar("pyramid_deferred.running_batch", default=None)
"""The batch running on this thread (set by the batch for its run)."""

NO_RUNNER = (
    "no deferred-task runner here: current_runner() works while a Pyramid request that includes "
    "pyramid_deferred is handled (or in its tasks). In a script, a worker or a thread you started, "
    "wrap the work in `with pyramid_deferred.deferred_scope() as runner:`, whose tasks run when "
    "the block ends."
)


class NoRunnerError(RuntimeError):
    """``current_runner()`` was called outside a request and outside a ``deferred_scope()``."""


def current_runner() -> DeferredTaskRunner:
    """The runner of the request being handled (or of the enclosing :func:`deferred_scope`).

    Past the tween (response callbacks, ``NewResponse`` subscribers, finished callbacks), the
    request is still Pyramid's current request: its runner is found through it.
    """
    runner = _current.get()
    if runner is None:
        batch = _running_batch.get()
        runner = batch.runner if batch is not None else _runner_of_pyramid_s_current_request()
        if runner is None:
            raise NoRunnerError(NO_RUNNER)
    return runner


def _runner_of_pyramid_s_current_request() -> DeferredTaskRunner | None:
    threadlocal = sys.modules.get("pyramid.threadlocal")  # no request without Pyramid loaded
    request = threadlocal.get_current_request() if threadlocal is not None else None
    runner = getattr(request, "deferred_task", None)
    return runner if isinstance(runner, DeferredTaskRunner) else None


@contextlib.contextmanager
def deferred_scope(runner: DeferredTaskRunner | None = None) -> Iterator[DeferredTaskRunner]:
    """Defer outside a request: the block's tasks run, in priority order and within the runner's
    budget, when it ends (as for a failed request if it raised: only ``always`` tasks)."""
    runner = DeferredTaskRunner() if runner is None else runner
    token = _current.set(runner)
    failed = False
    try:
        yield runner
    except BaseException:
        failed = True
        raise
    finally:
        try:  # still the current runner: its tasks may defer more, on any thread
            runner.run(request_failed=failed)
        finally:
            _current.reset(token)
            runner.close()

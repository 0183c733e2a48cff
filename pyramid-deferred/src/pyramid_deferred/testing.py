"""Capture what requests defer, for tests: inspect it, let it run, or keep it from running.

``capture_deferred_tasks()`` makes every app in the process build its runners with
``DeferredTaskCapture.runner`` (runners that record themselves) while the block is open, so the
hook runs them as usual and nothing is patched. The pytest fixture ``deferred_tasks``
(``pyramid_deferred.pytest_plugin``, opt-in) is this context manager.

- ``execute = True`` (default): each request's tasks run after its response, exactly as in
  production (Django's ``captureOnCommitCallbacks(execute=True)``), and are recorded.
- ``execute = False``: nothing runs after the response; the tasks stay queued and recorded, and
  :meth:`DeferredTaskCapture.run` runs them later, as the hook would have (Django's
  ``execute=False`` followed by calling the callbacks), or never (the test skips them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pyramid_deferred.batch import BATCH_ATTR, Trigger
from pyramid_deferred.core.durable import ServiceDown, durable_function
from pyramid_deferred.core.log import LOGGER_NAME
from pyramid_deferred.core.report import RunReport
from pyramid_deferred.core.runner import DeferredTaskRunner
from pyramid_deferred.core.task import DeferredTask
from pyramid_deferred.durable.message import MessageCodec, SealedMessage, SpilledTask
from pyramid_deferred.durable.outbox import OutboxUnavailable
from pyramid_deferred.durable.spill import BrokerUnavailable, Claim
from pyramid_deferred.hook import override_runner_factory
from pyramid_deferred.scope import NoRunnerError

NOT_WIRED = (
    "no runner was built through it. Was a request made, to an app that includes pyramid_deferred, "
    "while the capture was open?"
)


class LogCapture(logging.Handler):
    """Every record of the add-on's loggers (``pyramid_deferred`` and below, DEBUG included) while
    the block is open: ``with LogCapture() as logs:``. For tests that assert what was logged, at
    which level, with which ``channel`` and ``request_id``. The logger's level is DEBUG inside the
    block and what it was after it; its other handlers and the app's configuration are untouched."""

    def __init__(self, logger_name: str = LOGGER_NAME) -> None:
        super().__init__(level=logging.NOTSET)
        self.records: list[logging.LogRecord] = []
        self._logger = logging.getLogger(logger_name)
        self._previous_level = logging.NOTSET

    def emit(self, record: logging.LogRecord) -> None:
        record.message = record.getMessage()  # as a formatter would, now: what the line said
        self.records.append(record)

    def at(self, level: str) -> list[str]:
        """The messages logged at ``level`` (a name: ``"NOTICE"``, ``"ERROR"``), in order."""
        return [r.message for r in self.records if r.levelname == level]

    def matching(self, text: str) -> list[logging.LogRecord]:
        return [r for r in self.records if text in r.message]

    def __enter__(self) -> LogCapture:
        self._previous_level = self._logger.level
        self._logger.setLevel(logging.DEBUG)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._previous_level)


class FakeClock:
    """A monotonic clock that moves only when a test (or a fake task) says so: pass it as a
    runner's ``clock`` to test budgets without sleeping."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True, slots=True)
class CapturedTask:
    """What a request deferred, without the callable: what tests assert on."""

    name: str
    priority: int
    max_cost_seconds: float
    always: bool

    @classmethod
    def of(cls, task: DeferredTask) -> CapturedTask:
        return cls(task.name, task.priority, task.max_cost_seconds, task.always)


class CapturedRequest:
    """One runner, that is one request: what it deferred and, once run, its report."""

    def __init__(self, runner: CapturingRunner) -> None:
        self._runner = runner
        self._tasks: tuple[CapturedTask, ...] | None = None
        self.request_failed: bool | None = None
        """What the hook said when it called run(): None until then."""
        self.report: RunReport | None = None
        """The run's report: None while the tasks are held (or the hook has not run them yet)."""

    @property
    def tasks(self) -> tuple[CapturedTask, ...]:
        """The queued tasks when the hook called run() (or now, before that), in run order.

        Forgotten and replaced (``unique``) tasks are not here; the report lists them.
        """
        if self._tasks is not None:
            return self._tasks
        return tuple(CapturedTask.of(task) for task in self._runner.pending())

    @property
    def names(self) -> list[str]:
        return [task.name for task in self.tasks]

    @property
    def held(self) -> bool:
        """The hook asked for a run that the capture held back; :meth:`run` has not run it yet."""
        return self.request_failed is not None and self.report is None

    def run(self, *, as_committed: bool = False) -> RunReport | None:
        """Run the held tasks now, with the request's outcome; None if nothing is held.

        ``as_committed``: as if the request had succeeded and its transaction committed, whatever
        it was: for the functional-test fixture of Pyramid's starter, whose every request shares
        one doomed transaction (each request counts as failed, its tasks would be discarded)."""
        if not self.held:
            return None
        failed = False if as_committed else bool(self.request_failed)
        self.report = self._runner.run_held(request_failed=failed)
        return self.report

    def _snapshot(self, request_failed: bool) -> None:
        self._tasks = tuple(CapturedTask.of(task) for task in self._runner.pending())
        self.request_failed = request_failed


class CapturingRunner(DeferredTaskRunner):
    """A real runner that records itself in a capture and obeys its ``execute`` switch."""

    def __init__(self, *, capture: DeferredTaskCapture, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._capture = capture
        self._record = capture._register(self)

    def run(
        self, *, ceiling_seconds: float | None = None, request_failed: bool = False, via: str = "run()"
    ) -> RunReport:
        record = self._record
        if record is None or record.request_failed is not None:
            # The capture ended, or this is not the hook's run (a task calling run(), say).
            return super().run(ceiling_seconds=ceiling_seconds, request_failed=request_failed, via=via)
        record._snapshot(request_failed)
        if not self._capture.execute:
            return RunReport(budget_seconds=None)
        record.report = super().run(ceiling_seconds=ceiling_seconds, request_failed=request_failed, via=via)
        return record.report

    def run_held(self, *, request_failed: bool) -> RunReport:
        return super().run(request_failed=request_failed)

    def _detach(self) -> None:
        self._record = None


class DeferredTaskCapture:
    """Every runner built by :meth:`runner` while the capture is open, one per request."""

    def __init__(self, *, execute: bool = True) -> None:
        self.execute = execute
        self._requests: list[CapturedRequest] = []
        self._runners: list[CapturingRunner] = []
        self._lock = threading.Lock()
        self._open = True

    def runner(self, **kwargs: Any) -> CapturingRunner:
        """A runner factory with ``DeferredTaskRunner``'s arguments, for a provider override."""
        return CapturingRunner(capture=self, **kwargs)

    def _register(self, runner: CapturingRunner) -> CapturedRequest | None:
        with self._lock:
            if not self._open:
                return None
            record = CapturedRequest(runner)
            self._requests.append(record)
            self._runners.append(runner)
            return record

    def close(self) -> None:
        """Stop recording; runners built from now on (or still alive) behave like plain runners."""
        with self._lock:
            self._open = False
            for runner in self._runners:
                runner._detach()

    @property
    def requests(self) -> list[CapturedRequest]:
        """One entry per runner built, that is per request, in the order they started.

        Raises if no runner was built at all while capturing: asserting that a request deferred
        nothing must not pass because the capture never saw the request.
        """
        with self._lock:
            if not self._runners:
                raise AssertionError(f"the capture saw no request: {NOT_WIRED}")
            return list(self._requests)

    @property
    def tasks(self) -> list[CapturedTask]:
        """Every request's queued tasks, request after request, each in run order."""
        return [task for request in self.requests for task in request.tasks]

    @property
    def names(self) -> list[str]:
        return [task.name for task in self.tasks]

    @property
    def reports(self) -> list[RunReport]:
        return [request.report for request in self.requests if request.report is not None]

    @property
    def executed(self) -> list[str]:
        """Names of the tasks that ran without raising, across every report."""
        return [name for report in self.reports for name in report.executed]

    def run(self, *, as_committed: bool = False) -> list[RunReport]:
        """Run every held request's tasks, request after request, as the hook would have (or,
        ``as_committed``, as if each request had committed: see :meth:`CapturedRequest.run`)."""
        return [
            report for request in self.requests
            if (report := request.run(as_committed=as_committed)) is not None
        ]

    def find(self, name: str) -> list[CapturedTask]:
        return [task for task in self.tasks if task.name == name]

    def assert_deferred(self, name: str, **expected: object) -> CapturedTask:
        """Assert that a task called ``name`` was deferred, with these attributes if given.

        ``deferred_tasks.assert_deferred("meta.purchase", priority=100, always=False)``
        """
        unknown = set(expected) - set(CapturedTask.__slots__)
        if unknown:
            raise TypeError(f"CapturedTask has no attribute(s) {sorted(unknown)}")
        found = self.find(name)
        if not found:
            raise AssertionError(f"no task named {name!r} was deferred; deferred: {self._describe()}")
        for task in found:
            if all(getattr(task, key) == value for key, value in expected.items()):
                return task
        raise AssertionError(f"{name!r} was deferred as {found}, not with {expected}")

    def assert_not_deferred(self, name: str) -> None:
        if self.find(name):
            raise AssertionError(f"{name!r} was deferred: {self.find(name)}")

    def assert_nothing_deferred(self) -> None:
        if self.tasks:
            raise AssertionError(f"expected no deferred task; deferred: {self._describe()}")

    def clear(self) -> None:
        """Forget what was recorded so far (runners already built keep working)."""
        with self._lock:
            self._requests.clear()

    def _describe(self) -> str:
        return ", ".join(self.names) or "no task"


@contextlib.contextmanager
def capture_deferred_tasks(*, execute: bool = True) -> Iterator[DeferredTaskCapture]:
    """Capture the runners of every app in this process while the block is open."""
    capture = DeferredTaskCapture(execute=execute)
    previous = override_runner_factory(capture.runner)
    try:
        yield capture
    finally:
        override_runner_factory(previous)
        capture.close()


DURABLE_CALLS: list[tuple[object, ...]] = []
"""What :func:`record_durable` was called with, in this process (durable tasks in tests)."""


@durable_function
def record_durable(*args: object, **kwargs: object) -> None:
    """A durable task's function for tests: declared durable, records its arguments."""
    DURABLE_CALLS.append((*args, *sorted(kwargs.items())))


@durable_function
def fail_durable(*args: object) -> None:
    """A durable task's function for tests that always raises."""
    raise RuntimeError("durable task failed on purpose")


@durable_function
def service_down_durable(service: str, retry_after: float) -> None:
    """A durable task's function for tests whose service is down."""
    raise ServiceDown(service, retry_after)


TEST_CODEC = MessageCodec(["a-test-signing-key-of-43-characters-XJ3kq9Zt"])
"""A codec for tests' spill-overs (a signing key that is nobody's secret)."""


class FakeSpiller:
    """A spill-over engine in memory: the sealed messages it took, and what they carry (opened with
    ``codec``, with their countdown), in order; ``down`` makes it refuse."""

    engine = "FakeEngine"

    def __init__(self, codec: MessageCodec = TEST_CODEC) -> None:
        self.codec = codec
        self.messages: list[SealedMessage] = []
        self.sent: list[SpilledTask] = []
        self.down = False

    def send(self, message: SealedMessage, *, countdown: float = 0.0) -> None:
        if self.down:
            raise BrokerUnavailable("ConnectionRefusedError: nobody listens")
        self.messages.append(message)
        self.sent.append(dataclasses.replace(self.codec.open(message), countdown=countdown))


class MemoryClaims:
    """Idempotency keys in memory (what Redis holds for the Celery spill-over)."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}

    def claim(self, key: str, lease_seconds: float) -> Claim:
        if key not in self.keys:
            self.keys[key] = "held"
            return Claim.CLAIMED
        return Claim.DONE if self.keys[key] == "done" else Claim.HELD

    def done(self, key: str) -> None:
        self.keys[key] = "done"

    def release(self, key: str) -> None:
        if self.keys.get(key) == "held":
            del self.keys[key]


class MemoryOutbox:
    """An outbox in memory (what Redis or the database holds), on ``clock``: ``entries`` maps each
    key to its sealed message text and lease end; ``records`` counts the writes (round trips)."""

    name = "memory"

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.entries: dict[str, tuple[str, float]] = {}
        self.records = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise OutboxUnavailable("ConnectionError: nobody listens")

    def record(self, entries: Sequence[tuple[str, str]], lease_seconds: float) -> None:
        self._check()
        self.records += 1
        for key, message in entries:
            self.entries[key] = (message, self.clock() + lease_seconds)

    def clear(self, keys: Sequence[str]) -> None:
        self._check()
        for key in keys:
            self.entries.pop(key, None)

    def take_expired(self, limit: int, lease_seconds: float) -> list[tuple[str, str]]:
        self._check()
        now = self.clock()
        expired = sorted((until, key) for key, (_, until) in self.entries.items() if until <= now)[:limit]
        taken = []
        for _, key in expired:
            message = self.entries[key][0]
            self.entries[key] = (message, now + lease_seconds)
            taken.append((key, message))
        return taken

    def pending(self) -> int:
        return len(self.entries)


def deferred_tasks_of(request: Any) -> tuple[CapturedTask, ...]:
    """What ``request`` deferred and has not run yet, in run order: for view tests on a
    ``DummyRequest`` (given the add-on's runner by ``pyramid.request.apply_request_extensions``),
    or a request of ``pyramid.scripting.prepare()``."""
    runner = request.__dict__.get("deferred_task")
    if not isinstance(runner, DeferredTaskRunner):
        raise NoRunnerError(
            "this request has no deferred-task runner: a DummyRequest gets one from "
            "pyramid.request.apply_request_extensions(request), once the add-on is included"
        )
    return tuple(CapturedTask.of(task) for task in runner.pending())


def run_deferred(request: Any, *, as_committed: bool = True) -> RunReport | None:
    """Run what ``request`` deferred now, as the server would once its response left; None when it
    deferred nothing. ``as_committed`` (the default): as if its transaction had committed, even if
    a test fixture doomed it. Its finished callbacks, processed later, run nothing again."""
    deferred_tasks_of(request)  # the same clear error without a runner
    batch = request.__dict__.get(BATCH_ATTR)
    if batch is None:
        return None
    if as_committed:
        batch.request_failed = False
        batch.transaction_committed = None
    report: RunReport | None = batch.run_once(Trigger.DIRECT)
    return report

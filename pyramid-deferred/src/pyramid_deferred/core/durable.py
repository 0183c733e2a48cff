"""Durable tasks: a declared function and JSON arguments, so that another process can run it.

A durable task's function is declared once, where it is defined, and deferred like any other
task, with :func:`durable` as its callable::

    @durable_function
    def send_purchase(order_id: str, total: float) -> None: ...

    request.deferred_task.defer(
        durable(send_purchase, order.id, total, service="meta"),
        max_cost_seconds=2.0, priority=PRIORITY_CRITICAL, name="meta.purchase",
    )

In-process it runs exactly like a lambda would (after the response, in priority order, within
the budget). What differs is its fate when it cannot run here: with a spill-over engine
configured (``pyramid_deferred.celery``) the runner hands it over instead of losing it. The
engine's worker runs only declared functions, found by name in the registry of this process
(which imported the same modules): a message never makes a worker import anything. The runner
only needs :class:`DurableHooks` (below); this module is framework-free.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pyramid_deferred.core.task import check_name

if TYPE_CHECKING:
    from pyramid_deferred.core.task import DeferredTask

MAX_MESSAGE_BYTES = 64 * 1024
"""A spilled task's arguments travel through the broker: keep them small (ids, not documents)."""

F = TypeVar("F", bound=Callable[..., object])

_REGISTRY: dict[str, Callable[..., object]] = {}
_REGISTRY_LOCK = threading.Lock()


_SPILL_POSSIBLE: ContextVar[bool] = ContextVar("pyramid_deferred_spill_possible", default=False)


def spill_possible() -> bool:
    """True inside a durable task that a failure would hand over (spill-over on, or already in
    the engine's worker, which retries). A task may then raise for a failure it would otherwise
    only log: without a spill-over, raising would only turn a logged failure into a lost one."""
    return _SPILL_POSSIBLE.get()


def call_with_spill_possible(call: Callable[[], object]) -> object:
    token = _SPILL_POSSIBLE.set(True)
    try:
        return call()
    finally:
        _SPILL_POSSIBLE.reset(token)


class NotDurableError(TypeError):
    """The function or the arguments of a durable task cannot travel to another process."""


class ServiceDown(Exception):
    """Raised by a durable task's function when its service is known to be down (its circuit
    breaker is open): the runner spills it, and the Celery retry waits ``retry_after`` seconds."""

    def __init__(self, service: str, retry_after: float) -> None:
        super().__init__(f"service {service} is down (circuit open); retry in {retry_after:.1f}s")
        self.service = service
        self.retry_after = max(0.0, float(retry_after))


class DurableCall:
    """The callable a durable task defers: ``function(*args, **kwargs)``, where ``function``
    is importable as ``function_path`` ("package.module:name") and the arguments survive a
    JSON round trip unchanged. Built by :func:`durable`, which checks both."""

    __slots__ = ("args", "function", "function_path", "kwargs", "payload", "service")

    function: Callable[..., object]
    function_path: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    service: str | None
    payload: str
    """``[args, kwargs]`` as JSON text: encoded once, at ``durable()``, for the spill message."""

    def __call__(self) -> object:
        return self.function(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        service = f", service={self.service!r}" if self.service else ""
        return f"durable({self.function_path}{service})"

    @property
    def default_name(self) -> str:
        """The task's name when ``defer()`` is given none: ``package.module.function``."""
        return self.function_path.replace(":", ".")


def durable_function(function: F) -> F:
    """Declare ``function`` durable: :func:`durable` accepts it, and a spill-over worker runs it
    when a message names its path (``"package.module:function"``). Returns it unchanged::

        @durable_function
        def send_purchase(order_id: str, total: float) -> None: ...

    Only a module-level function can be declared (another process finds it by its module and
    name). The worker knows the functions of the modules it imported: give
    ``create_celery_app(imports=...)`` the modules that declare them."""
    path = _path_of(function)
    with _REGISTRY_LOCK:
        _REGISTRY[path] = function  # a module reloaded declares its functions again
    return function


def registered_function(function_path: str) -> Callable[..., object]:
    """The declared function ``function_path`` names; never an import (a worker reads the path
    from a message). Raises :class:`NotDurableError` for anything else."""
    function = _REGISTRY.get(function_path) if isinstance(function_path, str) else None
    if function is None:
        shown = function_path if isinstance(function_path, str) and len(function_path) <= 200 else "?"
        raise NotDurableError(
            f"{shown!a} is not a durable function of this process: declare it with "
            "@durable_function, and import its module where the tasks run (the worker's "
            "create_celery_app(imports=...))"
        )
    return function


def durable_function_paths() -> tuple[str, ...]:
    """The paths of every function declared durable in this process, sorted (a worker logs them)."""
    with _REGISTRY_LOCK:
        return tuple(sorted(_REGISTRY))


def durable(function: Callable[..., object] | str, /, *args: Any, service: str | None = None,
            **kwargs: Any) -> DurableCall:
    """A durable task: ``function(*args, **kwargs)``, runnable by another process.

    ``function``: a function declared with :func:`durable_function` (or its path,
    ``"package.module:name"``). ``args`` and ``kwargs``: JSON values (str, int, float, bool,
    None, lists, dicts with str keys) that come back unchanged from JSON (a tuple would come back
    a list: pass a list). ``service``: the remote service the task talks to (``"meta"``), so that
    it spills without spending budget while that service's circuit breaker is open
    (``config.set_deferred_task_service_check``); it is reserved here, so a function's own
    keyword argument cannot be called ``service``.

    Raises :class:`NotDurableError` (a TypeError) naming what cannot travel.
    """
    call = object.__new__(DurableCall)
    call.function, call.function_path = _resolve(function)
    call.args, call.kwargs = args, kwargs
    call.payload = _encode(call.function_path, args, kwargs)
    if service is not None:
        check_name(service)
    call.service = service
    return call


def decode_payload(payload: str) -> tuple[list[Any], dict[str, Any]]:
    """``args`` and ``kwargs`` back from a spilled task's payload."""
    decoded = json.loads(payload)
    if (not isinstance(decoded, list) or len(decoded) != 2 or not isinstance(decoded[0], list)
            or not isinstance(decoded[1], dict)):
        raise ValueError("a durable payload is the JSON of [args, kwargs]")
    return decoded[0], decoded[1]


def _path_of(function: Callable[..., object]) -> str:
    """``"module:qualname"`` of a module-level function; NotDurableError for anything else."""
    if not callable(function):
        raise NotDurableError(f"a durable task's function must be callable, got {type(function).__name__}")
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise NotDurableError(
            f"durable task function {function!r} has no importable name: use a module-level function"
        )
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise NotDurableError(
            f"durable task function {module}.{qualname} is a lambda or a closure: another process cannot "
            "find it; use a module-level function and pass what it needs as JSON arguments"
        )
    if module == "__main__":
        raise NotDurableError(
            f"durable task function {qualname} lives in __main__: a worker knows it under another "
            "name; move it to an importable module"
        )
    return f"{module}:{qualname}"


def _resolve(function: Callable[..., object] | str) -> tuple[Callable[..., object], str]:
    if isinstance(function, str):
        return registered_function(function), function
    path = _path_of(function)
    registered = _REGISTRY.get(path)
    if registered is None:
        raise NotDurableError(
            f"durable task function {path} is not declared durable: decorate it with @durable_function "
            "(from pyramid_deferred.durable), so that the worker may run it"
        )
    if registered is not function:
        raise NotDurableError(
            f"durable task function {path} is not the function declared under that path (a bound "
            "method, a decorated or replaced function?): use the module-level function itself"
        )
    return function, path


def _encode(path: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    original = [list(args), dict(kwargs)]
    try:
        payload = json.dumps(original, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise NotDurableError(
            f"durable task {path}: {_first_problem(original) or error} (arguments must be JSON values)"
        ) from None
    if json.loads(payload) != original:
        raise NotDurableError(
            f"durable task {path}: {_first_problem(original) or 'arguments change in a JSON round trip'}"
        )
    if len(payload.encode()) > MAX_MESSAGE_BYTES:
        raise NotDurableError(
            f"durable task {path}: its arguments are {len(payload.encode())} bytes of JSON, more than "
            f"{MAX_MESSAGE_BYTES}: pass ids and let the function load the rest"
        )
    return payload


def _first_problem(value: object, where: str = "arguments") -> str | None:
    """The first value that does not survive JSON unchanged, named by where it sits."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r}, which JSON cannot carry"
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _first_problem(item, f"{where}[{index}]")
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has the key {key!r}: JSON object keys are strings"
            problem = _first_problem(item, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if isinstance(value, tuple):
        return f"{where} is a tuple, which comes back from JSON as a list: pass a list"
    return f"{where} is a {type(value).__name__}, not a JSON value"


class DurableHooks(Protocol):
    """What the runner asks of the spill-over while it runs one request's tasks (the request's
    :class:`pyramid_deferred.durable.DurableRun`). ``sequence`` is the task's place in its
    request (with the request id and the task name: its idempotency key)."""

    def service_down(self, call: DurableCall) -> float | None:
        """None when the task may run now; else the seconds until its service may be retried."""

    def spill(self, item: DeferredTask, sequence: int, reason: str, *, detail: str = "",
              countdown: float = 0.0, error: BaseException | None = None) -> bool:
        """Hand the task over (it is logged there); False when that failed (logged at ERROR with
        everything needed to replay it), and the runner records its usual outcome."""

    def guard(self, item: DeferredTask, sequence: int) -> Callable[[], object]:
        """The task's call, wrapped so that its key is claimed before and recorded after."""

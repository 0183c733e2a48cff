"""The value object a view hands to the runner."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

MAX_NAME_LENGTH = 200


def default_name(task: Callable[[], object]) -> str:
    """The callable's qualified name, so an unnamed task still shows up in logs by name."""
    durable_name = getattr(task, "default_name", None)  # a DurableCall: its function's path
    if isinstance(durable_name, str):
        return durable_name
    name = getattr(task, "__qualname__", None) or getattr(task, "__name__", None)
    if isinstance(name, str) and name:
        module = getattr(task, "__module__", None)
        return f"{module}.{name}" if isinstance(module, str) and module else name
    return type(task).__qualname__


class _DeferredTaskFields(NamedTuple):
    task: Callable[[], object]
    max_cost_seconds: float
    priority: int
    name: str
    always: bool = False
    concurrent: bool = False


class DeferredTask(_DeferredTaskFields):
    """One unit of post-response work: what to call, what it may cost, how urgent it is.

    Immutable, and validated on construction so that a bad argument fails at the ``defer()``
    call that made it, not minutes later in a log line after the response. (A named tuple:
    the runner creates one per ``defer()``, and this is the cheapest immutable record.)
    """

    __slots__ = ()

    def __new__(
        cls,
        task: Callable[[], object],
        max_cost_seconds: float,
        priority: int,
        name: str,
        always: bool = False,
        concurrent: bool = False,
    ) -> DeferredTask:
        _validate(task, max_cost_seconds, priority, name, always)
        if not isinstance(concurrent, bool):
            raise TypeError(f"concurrent must be a bool, got {type(concurrent).__name__}")
        return unchecked(cls, (task, max_cost_seconds, priority, name, always, concurrent))


unchecked: Callable[[type[DeferredTask], tuple[object, ...]], DeferredTask] = tuple.__new__
"""``unchecked(DeferredTask, fields)``: build without validating, for arguments already checked
(``DeferredTask.__new__`` after its checks, and ``defer()``'s fast path)."""


def _validate(task: object, cost: object, priority: object, name: object, always: object) -> None:
    if not callable(task):
        raise TypeError(f"task must be a zero-argument callable, got {type(task).__name__}")
    if isinstance(cost, bool) or not isinstance(cost, int | float):
        raise TypeError(
            f"max_cost_seconds must be a number of seconds (int or float), got {type(cost).__name__}"
        )
    if not is_finite(cost) or cost < 0:
        raise ValueError(f"max_cost_seconds must be a finite number >= 0, got {cost!r}")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int, got {type(priority).__name__}")
    check_name(name)
    if not isinstance(always, bool):
        raise TypeError(f"always must be a bool, got {type(always).__name__}")


def is_finite(number: float) -> bool:
    """``math.isfinite`` that answers False for a whole number too large for a float (10**400),
    where ``math.isfinite`` raises OverflowError."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def check_name(name: object) -> str:
    """Names end up in log lines: one printable line, so a name cannot forge a log record."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not name.strip():
        raise ValueError("name must be a non-empty string such as 'meta.purchase'")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"name must be at most {MAX_NAME_LENGTH} characters, got {len(name)}")
    if not name.isprintable():
        raise ValueError(f"name must be printable, without newlines or control characters: {name!r}")
    return name

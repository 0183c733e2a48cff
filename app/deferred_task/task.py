"""The value object a view hands to the runner."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

MAX_NAME_LENGTH = 200


def default_name(task: Callable[[], object]) -> str:
    """The callable's qualified name, so an unnamed task still shows up in logs by name."""
    name = getattr(task, "__qualname__", None) or getattr(task, "__name__", None)
    if isinstance(name, str) and name:
        module = getattr(task, "__module__", None)
        return f"{module}.{name}" if isinstance(module, str) and module else name
    return type(task).__qualname__


@dataclass(frozen=True, slots=True)
class DeferredTask:
    """One unit of post-response work: what to call, what it may cost, how urgent it is.

    Validated on construction so that a bad argument fails at the ``defer()`` call
    that made it, not minutes later in a log line after the response.
    """

    task: Callable[[], object]
    max_cost_seconds: float
    priority: int
    name: str
    always: bool = False

    def __post_init__(self) -> None:
        if not callable(self.task):
            raise TypeError(f"task must be a zero-argument callable, got {type(self.task).__name__}")
        cost = self.max_cost_seconds
        if isinstance(cost, bool) or not isinstance(cost, int | float):
            raise TypeError(
                f"max_cost_seconds must be a number of seconds (int or float), "
                f"got {type(cost).__name__}"
            )
        if math.isnan(cost) or math.isinf(cost) or cost < 0:
            raise ValueError(f"max_cost_seconds must be a finite number >= 0, got {cost!r}")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise TypeError(f"priority must be an int, got {type(self.priority).__name__}")
        check_name(self.name)
        if not isinstance(self.always, bool):
            raise TypeError(f"always must be a bool, got {type(self.always).__name__}")


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

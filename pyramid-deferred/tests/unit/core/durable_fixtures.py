"""Module-level functions for durable tasks in the unit tests (a durable function must import)."""

from __future__ import annotations

CALLS: list[tuple[object, ...]] = []


def record(*args: object, **kwargs: object) -> None:
    CALLS.append((*args, *sorted(kwargs.items())))


def explode(*args: object) -> None:
    raise RuntimeError("boom")

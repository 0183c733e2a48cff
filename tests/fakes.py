"""Deterministic stand-ins the tests share."""

from __future__ import annotations

from collections.abc import Callable


class FakeClock:
    """A monotonic clock that moves only when a test (or a fake task) says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def timed_task(clock: FakeClock, seconds: float, trail: list[str], label: str) -> Callable[[], None]:
    """A task that 'takes' ``seconds`` on the fake clock and records that it ran."""

    def task() -> None:
        trail.append(label)
        clock.advance(seconds)

    return task

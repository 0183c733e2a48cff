"""Failed token attempts counted per key (a client address, or everyone) in fixed windows, so that
guessing the dashboard's token costs a window's wait every few tries.

A key's window opens at its first failure and lasts ``window_seconds``; once ``limit`` failures
fall in it, the key is throttled until the window ends, whatever it sends. Time is passed in
(``now``), so a test drives it with a fake clock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(slots=True)
class Window:
    opened_at: float
    failures: int = 0


class Throttle:
    """Windows of failures per key; memory stays bounded by ``max_keys`` (expired windows first,
    then the oldest ones, are dropped). Safe to use from the server's threads."""

    def __init__(self, *, limit: int, window_seconds: float, max_keys: int) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.max_keys = max_keys
        self._windows: dict[str, Window] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._windows)

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until ``key`` may try again, or None when it may now."""
        with self._lock:
            window = self._windows.get(key)
            if window is None or window.failures < self.limit:
                return None
            left = window.opened_at + self.window_seconds - now
            return left if left > 0 else None

    def failed(self, key: str, now: float) -> bool:
        """Count one failure; True when it is the one that throttles ``key`` (once per window)."""
        with self._lock:
            window = self._windows.get(key)
            if window is None or now >= window.opened_at + self.window_seconds:
                if window is None and len(self._windows) >= self.max_keys:
                    self._make_room(now)
                self._windows.pop(key, None)  # re-inserted last: the dict's order is the windows' age
                window = self._windows[key] = Window(opened_at=now)
            window.failures += 1
            return window.failures == self.limit

    def _make_room(self, now: float) -> None:
        for key, window in list(self._windows.items()):
            if now >= window.opened_at + self.window_seconds:
                del self._windows[key]
        while len(self._windows) >= self.max_keys:  # insertion order: the oldest window first
            del self._windows[next(iter(self._windows))]

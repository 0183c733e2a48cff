"""Costs learned from real runs: per task name, what its recent runs took.

A declared cost is a worst case (a timeout budget: 3 s) while healthy calls take a few hundred
milliseconds, so a tight budget would skip the task every time. After enough runs, admission
against the *budget* may use the observed bound (the window's p99, with a margin) when it is
lower than the declared cost; admission against the *hard limit* (a server's kill timeout)
always uses the declared cost, so the process is never killed for a learned optimism.
"""

from __future__ import annotations

import math
import threading
from collections import deque

DEFAULT_WINDOW = 200
DEFAULT_MIN_SAMPLES = 20
QUANTILE = 0.95
"""The default quantile of the window that bounds a task's cost: p95 admits a task whose slow
tail is a few per cent of its runs (the tail then overruns the budget, bounded by the declared
cost and logged); p99 (``quantile=0.99``) keeps the budget tighter but, with a tail above 1 %,
lands in the tail and admits almost nothing more than the declared cost does."""
MARGIN = 1.1
"""The observed bound is the window's quantile times this: a little room above what was seen."""
MAX_NAMES = 4096
RECOMPUTE_EVERY = 8
"""The p99 is recomputed (a sort of the window) at most once per this many new samples."""


class CostModel:
    """Shared by one app's runners (thread-safe); bounded in names and samples per name."""

    def __init__(
        self, *, window: int = DEFAULT_WINDOW, min_samples: int = DEFAULT_MIN_SAMPLES,
        quantile: float = QUANTILE,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an int >= 1, got {window!r}")
        in_range = isinstance(min_samples, int) and 1 <= min_samples <= window
        if isinstance(min_samples, bool) or not in_range:
            raise ValueError(f"min_samples must be an int from 1 to window ({window}), got {min_samples!r}")
        if isinstance(quantile, bool) or not isinstance(quantile, int | float) or not 0.5 <= quantile <= 1.0:
            raise ValueError(f"quantile must be a number from 0.5 to 1.0, got {quantile!r}")
        self.window = window
        self.min_samples = min_samples
        self.quantile = float(quantile)
        self._samples: dict[str, deque[float]] = {}
        self._bounds: dict[str, float] = {}
        self._fresh: dict[str, int] = {}
        self._lock = threading.Lock()

    def record(self, name: str, seconds: float) -> None:
        """One run of ``name`` took ``seconds`` (executed or failed: both held the thread)."""
        with self._lock:
            samples = self._samples.get(name)
            if samples is None:
                if len(self._samples) >= MAX_NAMES:
                    return  # task names are a small static set; beyond it, learn nothing new
                samples = self._samples[name] = deque(maxlen=self.window)
            samples.append(seconds)
            fresh = self._fresh.get(name, 0) + 1
            if len(samples) >= self.min_samples and (fresh >= RECOMPUTE_EVERY or name not in self._bounds):
                ordered = sorted(samples)
                index = min(len(ordered) - 1, math.ceil(self.quantile * len(ordered)) - 1)
                self._bounds[name] = ordered[index] * MARGIN
                fresh = 0
            self._fresh[name] = fresh

    def bound(self, name: str) -> float | None:
        """The observed bound for ``name`` once it has ``min_samples`` runs; None before."""
        return self._bounds.get(name)

    def wants_samples(self, name: str) -> bool:
        """Too few runs of ``name`` to bound it yet: a trial run would teach the model."""
        return name not in self._bounds

    def samples(self, name: str) -> int:
        with self._lock:
            samples = self._samples.get(name)
            return 0 if samples is None else len(samples)

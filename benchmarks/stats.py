"""Percentiles the way the report quotes them, in milliseconds."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def percentile(samples: Sequence[float], pct: float) -> float:
    """``pct`` in 1..99; linear interpolation between closest ranks (``statistics.quantiles``)."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[round(pct) - 1]


def summarize_ms(samples: Sequence[float]) -> dict[str, Any]:
    """p50/p99/min/max/mean in ms of latencies given in seconds."""
    if not samples:
        return {"n": 0}
    ms = [value * 1000 for value in samples]
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50), 3),
        "p99": round(percentile(ms, 99), 3),
        "min": round(min(ms), 3),
        "max": round(max(ms), 3),
        "mean": round(statistics.fmean(ms), 3),
    }

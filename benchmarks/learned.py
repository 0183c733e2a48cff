"""Issue 13: admission on learned costs, simulated on a fake clock (part of the budget benchmark).

A declared cost is a worst case (a service's deadline: Meta 3.1 s) while healthy calls take a
few hundred milliseconds, so a tight budget skips such a task every time. Here each simulated
request is a checkout of the example shop: the tasks ``app/views/checkout.py`` defers (Meta
Purchase, Manago purchase, one Advisable AI purchase signal per order line, all critical; the
Matomo flush, low), with the declared costs the shop's services compute from their settings.
Each task, when run, advances a :class:`~pyramid_deferred.testing.FakeClock` by a duration drawn
from its service's distribution (lognormal around a few hundred ms, plus a slow tail of a few per
cent up to just under the declared cost, which the HTTP deadline caps): no sleeping, seeded,
deterministic.

The same requests, with the same durations, go through real runners under each policy:

- ``declared``: ``learned_costs`` off (admission on the declared cost alone);
- ``learned``: one :class:`~pyramid_deferred.core.costs.CostModel` shared by the requests, fed
  by the runner itself (it learns only from the tasks it runs, as in production);
- ``learned_seeded``: the same, its model also told what every skipped call would have taken
  (as if another path had run them): the most learning could give;
- ``oracle``: knows each duration; priority order, admits a task iff its true duration fits what
  is left of the budget.

Two ways of running the batch: ``sequential`` (one task after another: ``concurrent=False``, or
``deferred_task.concurrent_threads = 0``) and ``concurrent`` (the shop's ``concurrent=True``: the
tasks start together on the pool, simulated by :class:`SimulatedPool`; the oracle runs every task
that fits the budget on its own). Each under a hard limit that leaves room (the budget binds) and
one barely above the budget (the hard limit binds, and must never be passed); each with the
services' slow tails as above (2-5 %) and with rare ones (0.5 %, see :data:`PROFILES`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, TypeVar

from pyramid_deferred.core import DeferredTaskRunner
from pyramid_deferred.core.costs import DEFAULT_MIN_SAMPLES, MARGIN, QUANTILE, CostModel
from pyramid_deferred.core.report import OBSERVED, Outcome
from pyramid_deferred.testing import FakeClock

from benchmarks import logsetup

T = TypeVar("T")
BUDGET_SECONDS = 2.0
HARD_LIMITS = {"roomy": 10.0, "tight": 3.5}
"""What the hard limit leaves of the request's life when its tasks start (``ceiling_seconds``)."""
MODES = ("sequential", "concurrent")
POLICIES = ("declared", "learned", "learned_seeded", "oracle")
WARMUP_REQUESTS = 200
"""Requests run under every policy before the counted ones: enough for every name that runs at all
to pass ``learned_cost_min_samples`` (20)."""
CRITICAL = DeferredTaskRunner.PRIORITY_CRITICAL
LOW = DeferredTaskRunner.PRIORITY_LOW


@dataclass(frozen=True, slots=True)
class Latency:
    """A service's call: lognormal around ``median`` seconds; with probability ``tail``, a slow
    call uniform between ``tail_from`` x and 0.97 x the declared cost (the deadline caps it)."""

    median: float
    sigma: float
    tail: float
    tail_from: float = 0.3

    def draw(self, rng: random.Random, declared: float) -> float:
        if rng.random() < self.tail:
            return rng.uniform(self.tail_from, 0.97) * declared
        return min(rng.lognormvariate(math.log(self.median), self.sigma), 0.97 * declared)


SERVICES: dict[str, Latency] = {
    "meta": Latency(median=0.30, sigma=0.35, tail=0.03),
    "manago": Latency(median=0.55, sigma=0.30, tail=0.04),  # two calls: the upsert, then the event
    "advisable_ai": Latency(median=0.18, sigma=0.30, tail=0.02),
    "matomo": Latency(median=0.25, sigma=0.40, tail=0.05),
}
PROFILES: dict[str, dict[str, Latency]] = {
    "tails_2_5pct": SERVICES,
    "tails_0_5pct": {name: dataclasses.replace(latency, tail=0.005) for name, latency in SERVICES.items()},
}
"""The services as above (slow tails of 2-5 %), and the same with rare slow calls (0.5 %: the
window's p99 then falls in the fast body rather than in the tail)."""
TASKS = {  # name: (service, priority), in the order a checkout defers them
    "meta.purchase": ("meta", CRITICAL),
    "manago.purchase": ("manago", CRITICAL),
    "advisable_ai.purchase": ("advisable_ai", CRITICAL),
    "matomo.flush": ("matomo", LOW),
}


def declared_costs() -> dict[str, float]:
    """Each service's ``max_cost_seconds`` as the shop computes it from its default settings."""
    from app.factory import build_container

    container = build_container({}, environ={})
    try:
        return {service: float(getattr(container, service)().max_cost_seconds) for service in SERVICES}
    finally:
        container.shutdown_resources()


Task = tuple[str, int, float, float]  # (name, priority, declared cost, true duration)


def checkout(rng: random.Random, costs: dict[str, float], services: dict[str, Latency]) -> list[Task]:
    """One checkout's batch: 1-3 order lines, one Advisable AI signal each."""
    names = ["meta.purchase", "manago.purchase"]
    names += ["advisable_ai.purchase"] * rng.choice((1, 1, 2, 3))
    names.append("matomo.flush")
    tasks = []
    for name in names:
        service, priority = TASKS[name]
        tasks.append((name, priority, costs[service], services[service].draw(rng, costs[service])))
    return tasks


class _SimulatedFuture(Future[T]):
    def __init__(self, clock: FakeClock, end: float) -> None:
        super().__init__()
        self._clock, self._end = clock, end

    def result(self, timeout: float | None = None) -> T:
        """Waiting for a task moves the clock to its end, if that is later."""
        self._clock.now = max(self._clock.now, self._end)
        return super().result(timeout)


class SimulatedPool(Executor):
    """Every submitted task starts at once (the shop's batches are smaller than the pool's 8
    threads): each runs at submission, then the clock goes back to when it was submitted; the
    runner's wait for a task moves the clock to that task's end."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock

    def submit(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> Future[T]:
        start = self._clock.now
        result = fn(*args, **kwargs)
        end, self._clock.now = self._clock.now, start
        future: _SimulatedFuture[T] = _SimulatedFuture(self._clock, end)
        future.set_result(result)
        return future


@dataclass
class Tally:
    """One policy's figures over the counted requests."""

    ran: int = 0
    observed: int = 0
    overshoots: list[float] | None = None
    past_budget: int = 0
    past_hard_limit: int = 0

    def add(self, ran: int, observed: int, elapsed: float, ceiling: float) -> None:
        if self.overshoots is None:
            self.overshoots = []
        self.ran += ran
        self.observed += observed
        self.overshoots.append(elapsed - BUDGET_SECONDS)
        self.past_budget += elapsed > BUDGET_SECONDS + 1e-9
        self.past_hard_limit += elapsed > ceiling + 1e-9


def run_policy(
    tasks: list[Task], *, model: CostModel | None, mode: str, ceiling: float
) -> tuple[int, int, float, list[Task]]:
    """(tasks run, of which admitted on their observed cost, elapsed, the tasks skipped)."""
    clock = FakeClock()
    runner = DeferredTaskRunner(
        budget_seconds=BUDGET_SECONDS, clock=clock, cost_model=model,
        executor=SimulatedPool(clock) if mode == "concurrent" else None,
    )
    for name, priority, cost, duration in tasks:
        runner.defer(
            functools.partial(clock.advance, duration), max_cost_seconds=cost, priority=priority,
            name=name, concurrent=mode == "concurrent",
        )
    report = runner.run(ceiling_seconds=ceiling)
    ran = [result for result in report.results if result.outcome is Outcome.EXECUTED]
    skipped_names = [result.name for result in report.results if result.outcome is Outcome.SKIPPED]
    skipped = []
    for task in tasks:  # the skipped tasks' true durations, matched by name in order
        if task[0] in skipped_names:
            skipped_names.remove(task[0])
            skipped.append(task)
    observed = sum(1 for result in ran if result.admitted_by == OBSERVED)
    return len(ran), observed, report.elapsed_seconds, skipped


def oracle(tasks: list[Task], *, mode: str, ceiling: float) -> tuple[int, float]:
    """(tasks run, elapsed): priority order (stable), a task runs iff its true duration fits."""
    limit = min(BUDGET_SECONDS, ceiling)
    order = sorted(tasks, key=lambda task: -task[1])
    if mode == "concurrent":
        durations = [task[3] for task in order if task[3] <= limit]
        return len(durations), max(durations, default=0.0)
    used, ran = 0.0, 0
    for task in order:
        if task[3] <= limit - used:
            used, ran = used + task[3], ran + 1
    return ran, used


def scenario(
    rng_seed: int, requests: int, costs: dict[str, float], *, profile: str, mode: str, ceiling: float
) -> dict[str, Any]:
    rng = random.Random(rng_seed)  # the same requests and durations for every scenario
    models = {"learned": CostModel(), "learned_seeded": CostModel()}
    tallies = {policy: Tally() for policy in POLICIES}
    for index in range(WARMUP_REQUESTS + requests):
        tasks = checkout(rng, costs, PROFILES[profile])
        counted = index >= WARMUP_REQUESTS
        for policy in ("declared", "learned", "learned_seeded"):
            model = models.get(policy)
            ran, observed, elapsed, skipped = run_policy(tasks, model=model, mode=mode, ceiling=ceiling)
            if policy == "learned_seeded" and model is not None:
                for name, _, _, duration in skipped:
                    model.record(name, duration)
            if counted:
                tallies[policy].add(ran, observed, elapsed, ceiling)
        if counted:
            ran, elapsed = oracle(tasks, mode=mode, ceiling=ceiling)
            tallies["oracle"].add(ran, 0, elapsed, ceiling)
    best = tallies["oracle"].ran
    rows: dict[str, dict[str, Any]] = {}
    for policy, tally in tallies.items():
        overshoots = tally.overshoots or [0.0]
        rows[policy] = {
            "ran": tally.ran,
            "of_oracle": round(tally.ran / best, 4) if best else None,
            "admitted_on_observed": tally.observed,
            "overshoot_ms_median": round(statistics.median(overshoots) * 1000, 3),
            "overshoot_ms_max": round(max(overshoots) * 1000, 3),
            "runs_past_budget": tally.past_budget,
            "runs_past_hard_limit": tally.past_hard_limit,
        }
    learned = rows["learned"]
    return {
        "profile": profile,
        "mode": mode,
        "ceiling_seconds": ceiling,
        "policies": rows,
        "bounds_seconds": {
            name: None if (bound := models["learned"].bound(name)) is None else round(bound, 3)
            for name in TASKS
        },
        "seeded_bounds_seconds": {
            name: None if (bound := models["learned_seeded"].bound(name)) is None else round(bound, 3)
            for name in TASKS
        },
        "learned_at_least_declared": learned["ran"] >= rows["declared"]["ran"],
        "learned_within_5pct_of_oracle": learned["of_oracle"] is not None and learned["of_oracle"] >= 0.95,
    }


def true_p99(
    rng_seed: int, costs: dict[str, float], services: dict[str, Latency], draws: int = 20_000
) -> dict[str, float]:
    """Each service's p99 duration in the simulated distribution (for the reader)."""
    rng = random.Random(rng_seed)
    p99 = {}
    for service, latency in services.items():
        values = sorted(latency.draw(rng, costs[service]) for _ in range(draws))
        p99[service] = round(values[math.ceil(QUANTILE * draws) - 1], 3)
    return p99


def measure(*, requests: int, seed: int = 13) -> dict[str, Any]:
    logsetup.configure("WARNING")
    started = time.monotonic()
    costs = declared_costs()
    scenarios = [
        scenario(seed, requests, costs, profile=profile, mode=mode, ceiling=ceiling)
        for profile in PROFILES
        for mode in MODES
        for ceiling in HARD_LIMITS.values()
    ]
    return {
        "budget_seconds": BUDGET_SECONDS,
        "hard_limits_seconds": HARD_LIMITS,
        "requests": requests,
        "warmup_requests": WARMUP_REQUESTS,
        "seed": seed,
        "min_samples": DEFAULT_MIN_SAMPLES,
        "quantile": QUANTILE,
        "margin": MARGIN,
        "declared_costs": costs,
        "latency": {
            profile: {service: dataclasses.asdict(latency) for service, latency in services.items()}
            for profile, services in PROFILES.items()
        },
        "true_p99_seconds": {
            profile: true_p99(seed, costs, services) for profile, services in PROFILES.items()
        },
        "scenarios": scenarios,
        "wall_seconds": round(time.monotonic() - started, 1),
    }

"""Properties of the runner for any mix of tasks, priorities, costs, durations, failures and budgets."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from loguru import logger

from app.deferred_task import DeferredTaskRunner, Outcome
from tests.fakes import FakeClock

PRIORITIES = st.sampled_from([0, 10, 50, 100, 7, -3])


@dataclass(frozen=True)
class Spec:
    priority: int
    cost: float
    actual: float
    raises: bool
    always: bool
    child: Spec | None = None


specs = st.recursive(
    st.builds(
        Spec,
        priority=PRIORITIES,
        cost=st.sampled_from([0, 0.5, 1, 2, 3, 5]),
        actual=st.sampled_from([0, 0.25, 0.5, 1, 2, 4]),
        raises=st.booleans(),
        always=st.booleans(),
    ),
    lambda children: st.builds(
        Spec,
        priority=PRIORITIES,
        cost=st.sampled_from([0, 1, 3]),
        actual=st.sampled_from([0, 0.5, 1]),
        raises=st.booleans(),
        always=st.booleans(),
        child=children,
    ),
    max_leaves=3,
)


class Scenario:
    """Defers every spec (children from inside their parent) and records what actually ran."""

    def __init__(self, budget: float, honest: bool) -> None:
        self.clock = FakeClock()
        self.runner = DeferredTaskRunner(budget_seconds=budget, clock=self.clock)
        self.honest = honest
        self.started: list[str] = []
        self.deferred: dict[str, tuple[int, int]] = {}  # name -> (priority, defer order)
        self.top_level: set[str] = set()

    def defer(self, spec: Spec, name: str) -> None:
        actual = min(spec.actual, spec.cost) if self.honest else spec.actual

        def task() -> None:
            self.started.append(name)
            self.clock.advance(actual)
            if spec.child is not None:
                self.defer(spec.child, f"{name}.child")
            if spec.raises:
                raise RuntimeError(f"{name} failed")

        self.deferred[name] = (spec.priority, len(self.deferred))
        self.runner.defer(
            task, max_cost_seconds=spec.cost, priority=spec.priority, name=name, always=spec.always
        )


def capture_levels() -> tuple[dict[str, list[str]], int]:
    by_level: dict[str, list[str]] = {}
    handler = logger.add(
        lambda m: by_level.setdefault(m.record["level"].name, []).append(m.record["message"]), level=0
    )
    return by_level, handler


@settings(max_examples=200, deadline=None)
@given(
    tasks=st.lists(specs, max_size=12),
    budget=st.sampled_from([0, 1, 2.5, 5, 10, 30]),
    request_failed=st.booleans(),
    forget=st.sets(st.integers(min_value=0, max_value=11), max_size=3),
    honest=st.booleans(),
)
def test_every_task_ends_exactly_once_in_order_within_budget(tasks, budget, request_failed, forget, honest):
    scenario = Scenario(budget, honest)
    for index, spec in enumerate(tasks):
        scenario.defer(spec, f"t{index}")
        scenario.top_level.add(f"t{index}")
    forgotten = {f"t{i}" for i in forget if i < len(tasks)}
    for name in forgotten:
        assert scenario.runner.forget(name) == 1

    logs, handler = capture_levels()
    try:
        report = scenario.runner.run(request_failed=request_failed)
    finally:
        logger.remove(handler)

    # Exactly once: every task deferred (children included) has exactly one outcome.
    names = [r.name for r in report.results]
    assert sorted(names) == sorted(scenario.deferred)
    assert set(report.forgotten) == forgotten
    assert not scenario.runner.has_tasks()

    # Started tasks are exactly the executed and failed ones, each started once.
    assert sorted(scenario.started) == sorted(report.executed + report.failed)

    # Whatever did not run is logged by name at its level.
    def logged(level: str, name: str) -> bool:
        return any(name in line.split() or f"{name} " in line for line in logs.get(level, []))

    for result in report.results:
        if result.outcome is Outcome.SKIPPED:
            assert logged("NOTICE", result.name)
        elif result.outcome is Outcome.DISCARDED:
            assert logged("INFO", result.name) and request_failed
        elif result.outcome is Outcome.FAILED:
            assert logged("ERROR", result.name)

    # Order: tasks deferred before run start by non-increasing priority, FIFO within a priority.
    top = [scenario.deferred[n] for n in scenario.started if n in scenario.top_level]
    assert top == sorted(top, key=lambda pair: (-pair[0], pair[1]))

    # With honest declared costs a budgeted run never exceeds its budget.
    if honest and budget:
        assert report.elapsed_seconds <= budget

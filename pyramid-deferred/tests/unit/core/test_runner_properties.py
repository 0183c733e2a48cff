"""Properties of the runner for any mix of tasks, priorities, costs, durations, failures and budgets.

On top of the mix: tasks deferred from inside tasks, ``unique`` replacements before the run and
during it, ``forget()`` before the run and from inside a running task, failed requests, and
interrupts (``KeyboardInterrupt``) in the middle of a run.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from pyramid_deferred.core import DeferredTaskRunner, Outcome, RunReport
from pyramid_deferred.testing import FakeClock, LogCapture

PRIORITIES = st.sampled_from([0, 10, 50, 100, 7, -3])
MAX_TASKS = 12
INDICES = st.integers(min_value=0, max_value=MAX_TASKS - 1)


@dataclass(frozen=True)
class Spec:
    priority: int
    cost: float
    actual: float
    raises: bool
    always: bool
    child: Spec | None = None
    child_unique: bool = False
    """The child is deferred with ``unique=True``: it replaces a queued task of its name."""
    child_of: int | None = None
    """The child is named ``t<child_of>.child`` (not ``<parent's name>.child``): the name of another
    task's child, which may be queued then, so a unique child replaces it during the run."""
    forgets: int | None = None
    """While running, this task calls ``forget("t<forgets>")``."""


specs = st.recursive(
    st.builds(
        Spec,
        priority=PRIORITIES,
        cost=st.sampled_from([0, 0.5, 1, 2, 3, 5]),
        actual=st.sampled_from([0, 0.25, 0.5, 1, 2, 4]),
        raises=st.booleans(),
        always=st.booleans(),
        forgets=st.none() | INDICES,
    ),
    lambda children: st.builds(
        Spec,
        priority=PRIORITIES,
        cost=st.sampled_from([0, 1, 3]),
        actual=st.sampled_from([0, 0.5, 1]),
        raises=st.booleans(),
        always=st.booleans(),
        child=children,
        child_unique=st.booleans(),
        child_of=st.none() | st.integers(min_value=0, max_value=2),
        forgets=st.none() | INDICES,
    ),
    max_leaves=3,
)


class Scenario:
    """Defers every spec (children from inside their parent) and records what actually ran.

    Names may repeat (a ``unique`` replacement has its target's name); each deferred task also
    has a label of its own, so that what ran is known task by task.
    """

    def __init__(self, budget: float, honest: bool) -> None:
        self.clock = FakeClock()
        self.runner = DeferredTaskRunner(budget_seconds=budget, clock=self.clock)
        self.honest = honest
        self.started: list[str] = []  # labels, in start order
        self.started_names: list[str] = []  # their names (a child's may be another task's child's)
        self.deferred: Counter[str] = Counter()  # names, one per defer() call
        self.forgotten: Counter[str] = Counter()  # names, one per task forget()/unique removed
        self.order: dict[str, tuple[int, int]] = {}  # label -> (priority, defer sequence)
        self.latest: dict[str, tuple[int, int]] = {}  # name -> the same, of its last defer()
        self.label_of: dict[int, str] = {}  # id(DeferredTask.task) -> label
        self.order_violations: list[str] = []
        self.effects: Counter[str] = Counter()
        """What the example exercised: children, ``unique`` replacements and forgets that removed
        a queued task, before or during the run (see test_the_strategy_generates_...)."""

    def defer(
        self, spec: Spec, name: str, label: str, *, unique: bool = False, running: bool = False
    ) -> None:
        actual = min(spec.actual, spec.cost) if self.honest else spec.actual

        def task() -> None:
            self.started.append(label)
            self.started_names.append(name)
            self.check_order(label)
            self.clock.advance(actual)
            if spec.child is not None:
                self.effects["child"] += 1
                child_name = f"{name}.child" if spec.child_of is None else f"t{spec.child_of}.child"
                self.defer(spec.child, child_name, f"{label}.child", unique=spec.child_unique, running=True)
            if spec.forgets is not None:
                self.forget(f"t{spec.forgets}", running=True)
            if spec.raises:
                raise RuntimeError(f"{label} failed")

        if unique:
            replaced = sum(1 for queued in self.runner.pending() if queued.name == name)
            self.forgotten[name] += replaced
            self.effects[f"unique replaced {'during' if running else 'before'} the run"] += bool(replaced)
        self.order[label] = self.latest[name] = (spec.priority, len(self.order))
        self.label_of[id(task)] = label
        self.deferred[name] += 1
        self.runner.defer(
            task, max_cost_seconds=spec.cost, priority=spec.priority, name=name, always=spec.always,
            unique=unique,
        )

    def forget(self, name: str, *, running: bool = False) -> None:
        forgotten = self.runner.forget(name)
        self.forgotten[name] += forgotten
        self.effects[f"forget {'during' if running else 'before'} the run"] += bool(forgotten)

    def check_order(self, label: str) -> None:
        """When a task starts, nothing still queued outranks it (FIFO among equals)."""
        mine = self.order[label]
        for queued in self.runner.pending():
            other = self.order[self.label_of[id(queued.task)]]
            if (-other[0], other[1]) < (-mine[0], mine[1]):
                self.order_violations.append(f"{label} {mine} started before {queued.name} {other}")


@contextmanager
def capture_levels() -> Iterator[dict[str, list[str]]]:
    """The messages logged in the block, by level name."""
    by_level: dict[str, list[str]] = {}
    with LogCapture() as capture:
        yield by_level
    for record in capture.records:
        by_level.setdefault(record.levelname, []).append(record.message)


def count_logged(logs: dict[str, list[str]], outcome: Outcome, name: str) -> int:
    """How many tasks called ``name`` the runner's lines report with ``outcome``."""
    escaped = re.escape(name)
    if outcome is Outcome.SKIPPED:
        return sum(bool(re.match(rf"Skipped deferred task {escaped} \(", m)) for m in logs.get("NOTICE", []))
    if outcome is Outcome.DISCARDED:
        pattern = rf"Discarded deferred task {escaped} because"
        return sum(bool(re.match(pattern, m)) for m in logs.get("INFO", []))
    if outcome is Outcome.FAILED:
        return sum(bool(re.match(rf"Deferred task {escaped} failed", m)) for m in logs.get("ERROR", []))
    if outcome is Outcome.FORGOTTEN:
        pattern = rf"Deferred task {escaped} \((\d+) queued\) (forgotten|replaced by)"
        return sum(int(found[1]) for m in logs.get("INFO", []) if (found := re.match(pattern, m)))
    raise AssertionError(outcome)


PROPERTY_EXAMPLES = 200
SCENARIOS = {
    "tasks": st.lists(specs, max_size=MAX_TASKS),
    "budget": st.sampled_from([0, 1, 2.5, 5, 10, 30]),
    "request_failed": st.booleans(),
    "forget": st.sets(INDICES, max_size=3),
    "replace_unique": st.sets(INDICES, max_size=3),
    "honest": st.booleans(),
}
"""The property's examples; test_the_strategy_generates_... counts what they exercise."""


def play(
    tasks: list[Spec], budget: float, request_failed: bool, forget: set[int], replace_unique: set[int],
    honest: bool,
) -> tuple[Scenario, RunReport]:
    """Defer ``tasks``, then unique replacements and forgets before the run, then run."""
    scenario = Scenario(budget, honest)
    for index, spec in enumerate(tasks):
        scenario.defer(spec, f"t{index}", f"t{index}")
    for index in sorted(replace_unique):
        if index < len(tasks):  # the same task again, unique: the queued one is replaced
            again = replace(tasks[index], priority=tasks[-1].priority)
            scenario.defer(again, f"t{index}", f"t{index}#2", unique=True)
    for index in sorted(forget):
        if index < len(tasks):
            scenario.forget(f"t{index}")
    if tasks:  # a task without a child, forget or unique: the plain case stays in every example
        scenario.defer(replace(tasks[0], child=None, forgets=None), "plain", "plain")
    return scenario, scenario.runner.run(request_failed=request_failed)


@settings(max_examples=PROPERTY_EXAMPLES, deadline=None)
@given(**SCENARIOS)
def test_every_task_ends_exactly_once_in_order_within_budget(
    tasks, budget, request_failed, forget, replace_unique, honest
):
    replaced = {f"t{i}" for i in replace_unique if i < len(tasks)}
    with capture_levels() as logs:  # forget() and unique log before the run too
        scenario, report = play(tasks, budget, request_failed, forget, replace_unique, honest)

    # Exactly once: every task deferred (children and replacements included) has one outcome.
    assert Counter(r.name for r in report.results) == scenario.deferred
    assert Counter(report.forgotten) == +scenario.forgotten
    assert not scenario.runner.has_tasks()

    # Started tasks are exactly the executed and failed ones, each started once; a replaced task
    # never starts.
    assert len(scenario.started) == len(set(scenario.started))
    started_names = Counter(scenario.started_names)
    assert started_names == Counter(report.executed + report.failed)
    assert not replaced & set(scenario.started)

    # Whatever did not run is logged, by name, once per task, at its level.
    for outcome in (Outcome.SKIPPED, Outcome.DISCARDED, Outcome.FAILED, Outcome.FORGOTTEN):
        decided = Counter(r.name for r in report.results if r.outcome is outcome)
        for name, count in decided.items():
            assert count_logged(logs, outcome, name) == count, (outcome, name)
    if not request_failed:
        assert report.discarded == ()

    # Order: whenever a task starts, no queued task has a higher priority, nor the same priority
    # and an earlier defer() (tasks deferred during the run included).
    assert not scenario.order_violations
    decided_before_run = [  # a task not forgotten is the last one deferred under its name
        scenario.latest[r.name] for r in report.results
        if r.outcome is not Outcome.FORGOTTEN and "." not in r.name
    ]
    assert decided_before_run == sorted(decided_before_run, key=lambda pair: (-pair[0], pair[1]))

    # With honest declared costs a budgeted run never exceeds its budget.
    if honest and budget:
        assert report.elapsed_seconds <= budget


@settings(max_examples=60, deadline=None)
@given(
    tasks=st.lists(specs, min_size=1, max_size=MAX_TASKS),
    interrupted=INDICES,
)
def test_an_interrupt_propagates_and_every_task_is_run_decided_or_named_as_abandoned(tasks, interrupted):
    interrupted %= len(tasks)
    scenario = Scenario(0, honest=True)  # unlimited: the interrupting task is never skipped
    stopper: list[str] = []

    def stop() -> None:
        stopper.append("stop")
        raise KeyboardInterrupt

    for index, spec in enumerate(tasks):
        scenario.defer(spec, f"t{index}", f"t{index}")
    scenario.runner.defer(stop, max_cost_seconds=0, priority=tasks[interrupted].priority, name="stop")

    with capture_levels() as logs:
        try:
            scenario.runner.run()
            interrupted_run = False
        except KeyboardInterrupt:
            interrupted_run = True

    assert interrupted_run and stopper == ["stop"]
    assert not scenario.runner.has_tasks()
    [abandon] = [m for m in logs.get("ERROR", []) if "was interrupted" in m]
    assert abandon.startswith("Deferred task stop was interrupted")
    abandoned = Counter(abandon.split(": ", 1)[1].split(", ")) - Counter(["none"])
    decided = Counter(scenario.started_names)
    for outcome in (Outcome.SKIPPED, Outcome.FORGOTTEN):
        for name in scenario.deferred:
            decided[name] += count_logged(logs, outcome, name)
    assert decided + abandoned == scenario.deferred


def test_the_property_covers_what_it_claims():
    """The strategy does produce children, unique children and forgets during the run."""
    spec = Spec(50, 1, 0, False, False, child=Spec(50, 1, 0, False, False), child_unique=True, forgets=0)
    scenario = Scenario(10, honest=True)
    scenario.defer(Spec(10, 1, 0, False, False), "t0", "t0")
    scenario.defer(Spec(10, 1, 0, False, False), "t1.child", "t1.child")
    scenario.defer(spec, "t1", "t1")
    report = scenario.runner.run()
    assert report.forgotten == ("t1.child", "t0")
    assert report.executed == ("t1", "t1.child")
    assert not scenario.order_violations


EXERCISED = (
    "child",
    "unique replaced before the run",
    "unique replaced during the run",
    "forget before the run",
    "forget during the run",
)
MIN_SHARE = 0.05
"""Each effect in at least this share of the examples. Derandomized, 200 examples: children 72 %,
unique replacements 39 % before and 12 % during the run, forgets 32 % before and 34 % during it."""


def test_the_strategy_generates_children_unique_replacements_and_forgets():
    """The property's own strategy (not hand-built cases) exercises each claim of the module
    docstring often: children deferred by running tasks, ``unique`` children that replace a
    queued task during the run, replacements and forgets before the run, forgets from inside a
    running task that remove a queued one. Fails if the strategy stopped generating one of them."""
    examples: Counter[str] = Counter()

    @settings(max_examples=PROPERTY_EXAMPLES, deadline=None, derandomize=True, database=None)
    @given(**SCENARIOS)
    def count(tasks, budget, request_failed, forget, replace_unique, honest):
        with capture_levels():  # keeps the runner's lines out of the output
            scenario, _ = play(tasks, budget, request_failed, forget, replace_unique, honest)
        examples["all"] += 1
        examples.update(effect for effect in EXERCISED if scenario.effects[effect])

    count()

    shares = {effect: examples[effect] / examples["all"] for effect in EXERCISED}
    assert all(share >= MIN_SHARE for share in shares.values()), shares

"""capture_deferred_tasks: dependency-injector overrides of the runner provider, undone on exit."""

from __future__ import annotations

from app.deferred_task import DeferredTaskRunner
from app.deferred_task.testing import CapturingRunner
from app.testing import capture_deferred_tasks
from containers import Container
from hooks.tween import fresh_runner


def make_container(**deferred_task) -> Container:
    container = Container()
    container.config.from_dict({"deferred_task": {"enabled": True, "budget_seconds": 10.0, **deferred_task}})
    return container


def test_containers_built_while_capturing_hand_out_capturing_runners_with_their_own_settings():
    with capture_deferred_tasks() as capture:
        container = make_container(budget_seconds=2.5, enabled=False)
        runner = fresh_runner(container)
        assert isinstance(runner, CapturingRunner)
        assert (runner.budget_seconds, runner.enabled) == (2.5, False)
        runner.defer(lambda: None, max_cost_seconds=1, name="a.one")
        assert capture.names == ["a.one"]


def test_each_request_still_gets_a_fresh_runner():
    with capture_deferred_tasks() as capture:
        container = make_container()
        first, second = fresh_runner(container), fresh_runner(container)
        assert first is not second and container.deferred_task() is second
        assert len(capture.requests) == 2


def test_attach_captures_a_container_built_before_the_capture():
    container = make_container()
    with capture_deferred_tasks() as capture:
        capture.attach(container)
        runner = fresh_runner(container)
        assert isinstance(runner, CapturingRunner)
        assert len(capture.requests) == 1
    assert not container.deferred_task.overridden


def test_a_container_built_before_the_capture_and_not_attached_is_left_alone():
    container = make_container()
    with capture_deferred_tasks() as capture:
        runner = fresh_runner(container)
        assert type(runner) is DeferredTaskRunner
        assert capture._runners == []


def test_leaving_the_block_removes_the_class_override_and_stops_recording():
    with capture_deferred_tasks(execute=False) as capture:
        inside = make_container()
        fresh_runner(inside)
    assert not Container.deferred_task.overridden
    assert type(make_container().deferred_task()) is DeferredTaskRunner
    trail: list[str] = []
    leftover = fresh_runner(inside)  # that container keeps its copy of the override, but inert
    assert leftover is not None
    leftover.defer(lambda: trail.append("ran"), max_cost_seconds=1, name="a.a")
    leftover.run()
    assert trail == ["ran"] and len(capture.requests) == 1

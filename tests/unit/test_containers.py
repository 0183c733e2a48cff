"""The container: one runner per request, wired from configuration."""

from __future__ import annotations

import threading

from app.deferred_task import DeferredTaskRunner
from containers import Container
from hooks.tween import fresh_runner


def make_container(**deferred_task) -> Container:
    container = Container()
    container.config.from_dict({"deferred_task": {"enabled": True, "budget_seconds": 10.0, **deferred_task}})
    return container


def test_runner_is_wired_from_configuration():
    runner = make_container(enabled=False, budget_seconds=2.5).deferred_task()
    assert isinstance(runner, DeferredTaskRunner)
    assert runner.enabled is False and runner.budget_seconds == 2.5


def test_same_runner_for_every_lookup_within_one_request():
    container = make_container()
    first = fresh_runner(container)
    assert container.deferred_task() is first and container.deferred_task() is first


def test_a_new_request_on_the_same_thread_gets_a_new_runner():
    container = make_container()
    first = fresh_runner(container)
    second = fresh_runner(container)
    assert second is not first and container.deferred_task() is second


def test_concurrent_requests_on_other_threads_get_their_own_runner():
    container = make_container()
    barrier = threading.Barrier(4)
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def request() -> None:
        runner = fresh_runner(container)
        barrier.wait(timeout=5)  # all four requests are in flight together
        with lock:
            seen.append((id(runner), id(container.deferred_task())))

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(seen) == 4
    assert all(mine == looked_up for mine, looked_up in seen)
    assert len({mine for mine, _ in seen}) == 4


def test_two_containers_do_not_share_runners():
    one, two = make_container(), make_container()
    assert fresh_runner(one) is not fresh_runner(two)


def test_an_override_is_what_requests_get():
    from dependency_injector import providers

    container = make_container()
    with container.deferred_task.override(
        providers.ContextLocalSingleton(DeferredTaskRunner, budget_seconds=1)
    ):
        first = fresh_runner(container)
        assert first is not None and first.budget_seconds == 1
        assert fresh_runner(container) is not first

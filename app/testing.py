"""Capturing deferred tasks in an application's container, through dependency-injector overrides.

``capture_deferred_tasks()`` overrides ``Container.deferred_task`` (so every container built
while it is open hands out capturing runners) and, with ``attach()``, the provider of a
container that already exists. Leaving the block removes the overrides and stops recording.
The pytest fixture ``deferred_tasks`` (``app.pytest_plugin``) is this context manager.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from dependency_injector import providers

from app.deferred_task.testing import DeferredTaskCapture
from containers import Container


class ContainerCapture(DeferredTaskCapture):
    """A capture that can also take over the runner provider of an existing container."""

    def __init__(self, stack: contextlib.ExitStack, *, execute: bool = True) -> None:
        super().__init__(execute=execute)
        self._stack = stack

    def attach(self, container: Container) -> None:
        """Capture the requests of ``container``, built before the capture started."""
        self._stack.enter_context(_override(container.deferred_task, self))


def _override(provider: Any, capture: DeferredTaskCapture) -> Any:
    """Same arguments as the real provider (budget, enabled, logger, clock), capturing runner."""
    capturing = providers.ContextLocalSingleton(capture.runner, **provider.kwargs)
    return provider.override(capturing)


@contextlib.contextmanager
def capture_deferred_tasks(*containers: Container, execute: bool = True) -> Iterator[ContainerCapture]:
    with contextlib.ExitStack() as stack:
        capture = ContainerCapture(stack, execute=execute)
        stack.callback(capture.close)  # runs last: after the overrides are gone
        stack.enter_context(_override(Container.deferred_task, capture))
        for container in containers:
            capture.attach(container)
        yield capture

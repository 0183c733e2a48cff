"""pytest plugin: the ``deferred_tasks`` fixture.

Installed with the package, registered by the ``pytest11`` entry point named like this module
(``app.pytest_plugin``), so ``-p app.pytest_plugin`` or ``pytest_plugins = ["app.pytest_plugin"]``
refer to the same plugin and never register it twice. Disable it with ``-p no:app.pytest_plugin``.

    def test_checkout_sends_the_purchase(webapp, deferred_tasks):
        webapp.post_json("/api/cart/items", {"product_id": "espresso-250"}, status=201)
        webapp.post_json("/api/checkout", {"email": "jane@example.com"})
        deferred_tasks.assert_deferred("meta.purchase", priority=100)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from app.testing import ContainerCapture

FIXTURE = "deferred_tasks"


@pytest.fixture
def deferred_tasks() -> Iterator[ContainerCapture]:
    """What each request of this test deferred; its tasks run after the response as usual.

    ``deferred_tasks.execute = False`` keeps them from running (``deferred_tasks.run()`` runs
    them later); ``deferred_tasks.attach(container)`` captures an app built before this fixture.
    """
    from app.testing import capture_deferred_tasks  # the app is imported only by tests that ask

    with capture_deferred_tasks() as capture:
        yield capture


@pytest.fixture(autouse=True)
def _deferred_tasks_before_apps(request: pytest.FixtureRequest) -> None:
    """Set ``deferred_tasks`` up before the test's other function-scoped fixtures.

    Containers built before the capture starts would not be captured, and a test should not
    have to list ``deferred_tasks`` before ``webapp`` for it to work.
    """
    if FIXTURE in request.fixturenames:
        request.getfixturevalue(FIXTURE)

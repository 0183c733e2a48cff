"""pytest plugin: the ``deferred_tasks`` fixture. Opt-in: installing the library adds nothing
to a test session; enable it with ``pytest_plugins = ["pyramid_deferred.pytest_plugin"]`` in a
conftest.py, or ``-p pyramid_deferred.pytest_plugin``.

    def test_checkout_sends_the_purchase(webapp, deferred_tasks):
        webapp.post_json("/api/checkout", {"email": "jane@example.com"})
        deferred_tasks.assert_deferred("meta.purchase", priority=100)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyramid_deferred.testing import DeferredTaskCapture, capture_deferred_tasks


@pytest.fixture
def deferred_tasks() -> Iterator[DeferredTaskCapture]:
    """What each request of this test deferred; its tasks run after the response as usual.

    ``deferred_tasks.execute = False`` keeps them from running (``deferred_tasks.run()`` runs
    them later). Apps built before the fixture are captured too.
    """
    with capture_deferred_tasks() as capture:
        yield capture

"""Every test of the suite runs under a time limit (pytest-timeout, the ``timeout`` of the pytest
configuration): a test that never ends (a loop whose bound a bug lifted) fails instead of running
for minutes and eating the machine's memory."""

from __future__ import annotations

import pytest

SUITE_LIMIT_SECONDS = 300.0
"""Generous for the real-server tests (the slowest take about a minute with their fixtures)."""


def test_the_suite_runs_every_test_under_a_time_limit(pytestconfig: pytest.Config) -> None:
    assert float(pytestconfig.getini("timeout")) == SUITE_LIMIT_SECONDS
    assert pytestconfig.pluginmanager.hasplugin("timeout")


def test_a_test_that_never_ends_fails_at_the_limit(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntimeout = 1\n")
    pytester.makepyfile(test_endless="def test_endless():\n    while True:\n        pass\n")
    result = pytester.runpytest_subprocess(timeout=60)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Timeout (>1.0s)*"])

"""Stress: waitress, 8 threads, 16 keep-alive clients (see tests/servers/stress.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.servers.servers import APP_FACTORY, HOST, RunningServer, ServerSpec, running_server
from tests.servers.stress import STRESS_ENV, Stress, StressRequest, skip_unless_linux, task_problems

pytestmark = pytest.mark.servers


def waitress_8_threads(port: int) -> list[str]:
    return [sys.executable, "-m", "waitress", f"--listen={HOST}:{port}", "--threads=8", "--call", APP_FACTORY]


WAITRESS_8 = ServerSpec("waitress-8", waitress_8_threads, env=STRESS_ENV, concurrency=8, family="waitress")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    skip_unless_linux()
    with running_server(WAITRESS_8, tmp_path_factory.mktemp(WAITRESS_8.name)) as running:
        yield running


class TestStressWaitress(Stress):
    FORKED = False


def test_the_stress_check_catches_lost_duplicated_leaked_and_foreign_tasks() -> None:
    """Negative control for the check the stress runs rely on (no server needed)."""
    requests = [StressRequest("a", 2, 0, False), StressRequest("b", 1, 0, False)]
    clean = [["a", "0", "a", "1", "t"], ["a", "1", "a", "1", "t"], ["b", "0", "b", "1", "t"]]
    assert task_problems(requests, clean) == []

    broken = [
        ["a", "0", "a", "1", "t"],
        ["a", "0", "a", "1", "t"],
        ["b", "0", "a", "1", "t"],
        ["c", "0", "c", "1", "t"],
    ]
    assert task_problems(requests, broken) == [
        "task ('a', '1') never ran",
        "task ('a', '0') ran 2 times",
        "unexpected task ('c', '0')",
        "task b/0 ran at the end of request 'a' (pid 1, t)",
    ]

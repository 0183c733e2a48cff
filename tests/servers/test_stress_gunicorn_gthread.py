"""Stress: gunicorn, 2 gthread workers x 8 threads, 16 keep-alive clients (see tests/servers/stress.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.servers import RunningServer, ServerSpec, gunicorn_argv, running_server
from tests.servers.stress import STRESS_ENV, Stress, skip_unless_linux

pytestmark = pytest.mark.servers

GUNICORN_GTHREAD_2X8 = ServerSpec(
    "gunicorn-gthread-2x8",
    gunicorn_argv("--worker-class", "gthread", "--workers", "2", "--threads", "8"),
    env=STRESS_ENV,
    concurrency=16,
    family="gunicorn",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    skip_unless_linux()
    spec = GUNICORN_GTHREAD_2X8
    with running_server(spec, tmp_path_factory.mktemp(spec.name)) as running:
        yield running


class TestStressGunicornGthread(Stress):
    FORKED = True

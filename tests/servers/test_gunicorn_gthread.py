"""gunicorn, one gthread worker with 4 threads: the body goes out first, and threads do not share runners."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.contract import EdgeResponses, Isolation, ResponseBeforeTasks
from tests.servers.servers import GUNICORN_GTHREAD, RunningServer, running_server

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(GUNICORN_GTHREAD, tmp_path_factory.mktemp(GUNICORN_GTHREAD.name)) as running:
        yield running


class TestGunicornGthread(ResponseBeforeTasks, EdgeResponses, Isolation):
    pass

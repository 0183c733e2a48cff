"""gunicorn, one sync worker, shipped gunicorn.conf.py: the process is busy with the tasks, not the client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.contract import EdgeResponses, ResponseBeforeTasks
from tests.servers.servers import GUNICORN_SYNC, RunningServer, running_server

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(GUNICORN_SYNC, tmp_path_factory.mktemp(GUNICORN_SYNC.name)) as running:
        yield running


class TestGunicornSync(ResponseBeforeTasks, EdgeResponses):
    pass

"""uWSGI --http-socket, one process, no --threads: tasks run in after_req_hook, after the socket closed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.contract import EdgeResponses, ResponseBeforeTasks
from tests.servers.servers import UWSGI, RunningServer, running_server

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(UWSGI, tmp_path_factory.mktemp(UWSGI.name)) as running:
        yield running


class TestUwsgi(ResponseBeforeTasks, EdgeResponses):
    pass

"""uWSGI --http-socket --threads 4: after_req_hook per thread, and threads do not share runners."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.contract import EdgeResponses, Isolation, ResponseBeforeTasks
from tests.servers.servers import UWSGI_THREADS, RunningServer, running_server

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(UWSGI_THREADS, tmp_path_factory.mktemp(UWSGI_THREADS.name)) as running:
        yield running


class TestUwsgiThreads(ResponseBeforeTasks, EdgeResponses, Isolation):
    pass

"""waitress, 4 threads: the body goes out first (hand-off where waitress ends it after close()),
and threads do not share runners.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.contract import EdgeResponses, Isolation, ResponseBeforeTasks
from tests.servers.servers import WAITRESS, RunningServer, running_server

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(WAITRESS, tmp_path_factory.mktemp(WAITRESS.name)) as running:
        yield running


class TestWaitress(ResponseBeforeTasks, EdgeResponses, Isolation):
    pass

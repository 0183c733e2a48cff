"""wsgiref (threading): HTTP/1.0, bodies without Content-Length end when the socket closes: hand-off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.contract import EdgeResponses, Isolation, ResponseBeforeTasks
from tests.servers.servers import WSGIREF, RunningServer, running_server

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(WSGIREF, tmp_path_factory.mktemp(WSGIREF.name)) as running:
        yield running


class TestWsgiref(ResponseBeforeTasks, EdgeResponses, Isolation):
    pass

"""uWSGI's graceful stop (master FIFO ``q``) lets the after-request hook finish the batch.

uWSGI 2.0 has no graceful signal: SIGTERM is a brutal reload (``--die-on-term``: a kill) and
SIGINT a kill, and it skips atexit hooks in a busy worker, so a batch running in
``after_req_hook`` then dies unlogged (docs/servers.md says so). The graceful way is the master FIFO.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tests.servers.contract import BODY_BOUND_SECONDS, read_marker, wait_for_marker
from tests.servers.servers import UWSGI, RunningServer, fetch, running_server, uwsgi_argv

pytestmark = pytest.mark.servers

STOP_TIMEOUT = 15.0


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("uwsgi-master-fifo")
    spec = dataclasses.replace(
        UWSGI,
        name="uwsgi-master-fifo",
        argv=uwsgi_argv("--master", "--master-fifo", str(directory / "master.fifo")),
    )
    with running_server(spec, directory) as running:
        yield running


def test_a_graceful_stop_lets_the_running_batch_finish(server: RunningServer) -> None:
    response = fetch(server.port, "/probe/sleep?rid=stop&seconds=0.5&tasks=3")
    assert response.status == 200 and response.seconds_to_body < BODY_BOUND_SECONDS
    wait_for_marker(server, "stop.started", timeout=5)

    (server.probe_dir / "master.fifo").write_text("q")

    assert server.process.wait(timeout=STOP_TIMEOUT) == 0
    assert all(read_marker(server, name) for name in ("stop", "stop-1", "stop-2"))

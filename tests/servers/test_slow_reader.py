"""A slow reader: "after the response" means the server handed the body to its buffers, not that
the client has it.

One 2 MiB response (with Content-Length) read by a client that takes 64 KiB every 20 ms (at
least 0.64 s for the whole body), on waitress and on gunicorn gthread. The request defers a
short task that writes a marker when it starts. What holds, and is asserted: the task starts
*before* the client has read the last byte (waitress has buffered the whole body by then;
gunicorn has written all but what the socket buffers hold), and the client still gets every
byte. The measured lead (how long before the last byte the task started, and how much of the
body the client had read then) is recorded as the ``slow_reader`` figure, printed in the terminal
summary; docs/servers.md quotes it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.servers.contract import wait_for_marker
from tests.servers.probe_app import SLOW_READER_BODY
from tests.servers.servers import GUNICORN_GTHREAD, HOST, WAITRESS, RunningServer, ServerSpec, running_server

pytestmark = pytest.mark.servers

READ_BYTES = 64 << 10
READ_EVERY = 0.02
RECEIVE_BUFFER = 64 << 10
"""The client's SO_RCVBUF, set before connecting (Linux doubles it): loopback's default would
take most of the body without the client reading."""
READ_TIMEOUT = 30.0
MAX_READS = 4 * len(SLOW_READER_BODY) // READ_BYTES + 100
TASK_SECONDS = 0.1


@dataclass(frozen=True)
class SlowRead:
    status: int
    body: bytes
    reads: list[tuple[float, int]]
    """(time.time(), bytes of body read so far) after every read."""

    @property
    def last_byte_at(self) -> float:
        return self.reads[-1][0]

    def read_by(self, moment: float) -> int:
        """Bytes of the body the client had read at ``moment``."""
        return max((count for at, count in self.reads if at <= moment), default=0)


def slow_get(port: int, path: str) -> SlowRead:
    """GET ``path`` and read the response ``READ_BYTES`` at a time, every ``READ_EVERY`` seconds;
    bounded by ``MAX_READS`` reads and ``READ_TIMEOUT`` seconds."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.settimeout(READ_TIMEOUT)
    with sock:
        sock.connect((HOST, port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode())
        deadline = time.monotonic() + READ_TIMEOUT
        received = bytearray()
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(READ_BYTES)
            assert chunk and time.monotonic() < deadline, "no complete response head"
            received += chunk
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        data = bytearray(body)
        reads = [(time.time(), len(data))]
        for _ in range(MAX_READS):
            if len(data) >= length or time.monotonic() >= deadline:
                break
            time.sleep(READ_EVERY)
            wanted = min(READ_BYTES, length - len(data))
            got = 0
            while got < wanted and time.monotonic() < deadline:
                chunk = sock.recv(wanted - got)
                if not chunk:
                    break
                data += chunk
                got += len(chunk)
            reads.append((time.time(), len(data)))
    return SlowRead(int(lines[0].split()[1]), bytes(data), reads)


@pytest.fixture(scope="module", params=[WAITRESS, GUNICORN_GTHREAD], ids=lambda spec: spec.name)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    spec: ServerSpec = request.param
    with running_server(spec, tmp_path_factory.mktemp(f"{spec.name}-slow-reader")) as running:
        yield running


def test_the_task_starts_before_a_slow_reader_has_the_whole_body(
    server: RunningServer, record_property: Callable[[str, object], None]
) -> None:
    rid = "slow-reader"

    read = slow_get(server.port, f"/probe/sleep?rid={rid}&seconds={TASK_SECONDS}&size=2MiB")

    assert read.status == 200 and read.body == SLOW_READER_BODY, "the slow reader did not get the whole body"
    started = wait_for_marker(server, f"{rid}.started")["started"]
    wait_for_marker(server, rid)  # the task ended: the server is idle again
    lead = read.last_byte_at - started
    had = read.read_by(started)
    record_property(
        "slow_reader",
        f"the task started {lead:.2f} s before the client had the last byte "
        f"(the client had read {had / (1 << 20):.2f} of {len(SLOW_READER_BODY) / (1 << 20):.0f} MiB; "
        f"{READ_BYTES >> 10} KiB every {READ_EVERY * 1000:.0f} ms, "
        f"{read.last_byte_at - read.reads[0][0]:.2f} s to read it)",
    )
    assert started < read.last_byte_at, (
        f"the task started {-lead:.3f}s after the client had the last byte: expected it to start while "
        "the body was still in the server's buffers"
    )
    assert had < len(SLOW_READER_BODY)

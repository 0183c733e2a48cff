"""A raw-socket HTTP/1.1 client: the clock stops when the last byte of the body has arrived.

Deliberately small: GET only, Content-Length or chunked bodies, keep-alive when the server
allows it. No library sits between the socket and the clock.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
RECV_BYTES = 65536


class ConnectionClosed(ConnectionError):
    """The server closed the connection before the response was complete."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    keep_alive: bool
    seconds: float
    """From before connecting (or sending, on a reused connection) to the body's last byte."""


class Connection:
    def __init__(self, port: int, *, timeout: float = 30.0) -> None:
        self.port = port
        self._sock = socket.create_connection((HOST, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def get(self, path: str, *, started: float | None = None) -> Reply:
        """Send one GET and read its whole response; ``started`` lets :func:`get` include connect."""
        started = time.perf_counter() if started is None else started
        self._sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n\r\n".encode("ascii"))
        head = self._read_until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        version, status = status_line.split(" ", 2)[:2]
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        if "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = self._read_chunked()
        else:
            body = self._read_to_end()
        seconds = time.perf_counter() - started
        keep_alive = version == "HTTP/1.1" and headers.get("connection") != "close"
        return Reply(int(status), body, keep_alive, seconds)

    def _recv(self) -> None:
        data = self._sock.recv(RECV_BYTES)
        if not data:
            raise ConnectionClosed(f"connection to port {self.port} closed mid-response")
        self._buffer += data

    def _read_until(self, marker: bytes) -> bytes:
        while (end := self._buffer.find(marker)) < 0:
            self._recv()
        data = bytes(self._buffer[:end])
        del self._buffer[: end + len(marker)]
        return data

    def _read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._recv()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while size := int(self._read_until(b"\r\n").split(b";")[0], 16):
            body += self._read_exact(size)
            self._read_exact(2)
        while self._read_until(b"\r\n"):  # trailers, then the empty line
            pass
        return bytes(body)

    def _read_to_end(self) -> bytes:
        try:
            while True:
                self._recv()
        except ConnectionClosed:
            pass
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


def get(port: int, path: str, *, timeout: float = 30.0) -> Reply:
    """One request on a fresh connection, timed from before the TCP connect."""
    started = time.perf_counter()
    with Connection(port, timeout=timeout) as connection:
        return connection.get(path, started=started)

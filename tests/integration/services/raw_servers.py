"""Hand-written servers on 127.0.0.1 for what pytest-httpserver cannot do.

``trickling_server`` answers slowly, byte by byte, so that each read is quick (no per-read
timeout fires) while the whole answer takes far longer than allowed; ``scripted_server``
answers whatever bytes it is given, HTTP or not.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

BODY = b'{"ok":true,"pad":"xxxx"}'  # trickled in about 1 s at 0.05 s a byte


def _answer(header_drip: bool) -> tuple[bytes, bytes]:
    """(sent at once, trickled): the trickle is the headers' end or the body."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    rest = f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY
    if header_drip:
        return head, rest
    return head + rest[: rest.index(b"\r\n\r\n") + 4], BODY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def trickling_server(
    *, header_drip: bool, interval: float, accepted: list[float] | None = None
) -> Iterator[str]:
    """Serve every connection one trickled answer; yields the base URL. ``accepted`` collects
    when each connection was accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    accepted = [] if accepted is None else accepted

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            try:
                conn.recv(65536)
                first, trickle = _answer(header_drip)
                conn.sendall(first)
                for i in range(len(trickle)):
                    if stop.is_set():
                        return
                    conn.sendall(trickle[i : i + 1])
                    time.sleep(interval)
            except OSError:
                return  # the client gave up: exactly what the tests want

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(time.monotonic())
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()


@contextmanager
def scripted_server(
    reply: bytes, *, delay: float = 0.0, accepted: list[float] | None = None
) -> Iterator[str]:
    """Answer every connection with ``reply`` (bytes that need not be HTTP at all) after ``delay``
    seconds, then close it; yields the base URL. ``accepted`` collects when each connection was
    accepted (each is served on its own thread: a slow answer never delays the next one)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    accepted = [] if accepted is None else accepted

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            try:
                conn.recv(65536)
                if stop.wait(delay):
                    return
                conn.sendall(reply)
            except OSError:
                return

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(time.monotonic())
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()

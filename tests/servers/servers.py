"""Start real WSGI servers as subprocesses on 127.0.0.1, talk raw HTTP/1.1 to them, stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from tests.servers.probe_app import PROBE_DIR_ENV

T = TypeVar("T")

WORKTREE = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
APP_FACTORY = "tests.servers.probe_app:make_app"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
SCRUBBED_ENV_PREFIXES = ("APP_DEFERRED_TASK_", "DEFERRED_TASK_", "APP_LOG_LEVEL")
NO_BODY_STATUSES = frozenset({204, 304})
EMPTY_REPLY = 0
"""The status of a "response" that was the server closing the connection without a byte."""


@dataclass(frozen=True)
class ServerSpec:
    name: str
    argv: Callable[[int], list[str]]
    """The command line, given the port to listen on."""
    env: Mapping[str, str] = field(default_factory=dict)
    concurrency: int = 1
    """Requests the server answers at once while as many earlier requests still run their tasks
    inline in ``close()`` (1 for a single sync worker)."""
    available: Callable[[], str | None] = lambda: None
    """None when the server can run here, else the reason its tests are skipped."""
    error_status: int = 500
    """What the client gets when an exception escapes the app."""
    family: str = ""
    """gunicorn, waitress, wsgiref or uwsgi: what decides the trigger (contract.EXPECTED_TRIGGERS)."""


GUNICORN_CONF = WORKTREE / "gunicorn.conf.py"


def gunicorn_argv(*worker_args: str, timeout: int = 30) -> Callable[[int], list[str]]:
    """gunicorn with the shipped gunicorn.conf.py, one worker; CLI options win over the file."""

    def argv(port: int) -> list[str]:
        return [
            sys.executable, "-m", "gunicorn",
            "--config", str(GUNICORN_CONF),
            "--bind", f"{HOST}:{port}",
            "--workers", "1",
            *worker_args,
            "--timeout", str(timeout),
            "--graceful-timeout", "15",
            f"{APP_FACTORY}()",
        ]

    return argv


def waitress_argv(port: int) -> list[str]:
    return [
        sys.executable, "-m", "waitress",
        f"--listen={HOST}:{port}", "--threads=4", "--call", APP_FACTORY,
    ]


def wsgiref_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "tests.servers.wsgiref_server", str(port)]


UWSGI_BIN = Path(sys.executable).with_name("uwsgi")
UWSGI_SKIP_REASON = (
    f"uWSGI is not installed ({UWSGI_BIN} missing): `pip install uwsgi` needs a C compiler and "
    "Python headers; `make test` installs it, and under CI=true these tests are never skipped"
)


def uwsgi_unavailable() -> str | None:
    """Skip uWSGI tests only on a developer machine that could not build it; never under CI."""
    if UWSGI_BIN.exists() or os.environ.get("CI"):
        return None
    return UWSGI_SKIP_REASON


def uwsgi_argv(*extra: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return [
            str(UWSGI_BIN),
            "--http-socket", f"{HOST}:{port}",
            "--module", "tests.servers.uwsgi_app",
            "--home", sys.prefix,
            "--need-app",
            "--processes", "1",
            "--disable-logging",
            *extra,
        ]

    return argv


GUNICORN_SYNC = ServerSpec(
    "gunicorn-sync", gunicorn_argv("--worker-class", "sync", "--threads", "1"), family="gunicorn"
)
GUNICORN_GTHREAD = ServerSpec(
    "gunicorn-gthread",
    gunicorn_argv("--worker-class", "gthread", "--threads", "4"),
    concurrency=4,
    family="gunicorn",
)
WAITRESS = ServerSpec("waitress", waitress_argv, concurrency=4, family="waitress")
WSGIREF = ServerSpec("wsgiref", wsgiref_argv, concurrency=4, family="wsgiref")
UWSGI = ServerSpec(
    "uwsgi", uwsgi_argv(), available=uwsgi_unavailable, error_status=EMPTY_REPLY, family="uwsgi"
)
UWSGI_THREADS = ServerSpec(
    "uwsgi-threads",
    uwsgi_argv("--threads", "4"),
    concurrency=4,
    available=uwsgi_unavailable,
    error_status=EMPTY_REPLY,
    family="uwsgi",
)


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    probe_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ServerStartError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def poll(condition: Callable[[], T], *, timeout: float, interval: float = 0.02) -> T | None:
    """``condition()`` until it returns something truthy (returned), or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def server_env(probe_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_ENV_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(WORKTREE), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env[PROBE_DIR_ENV] = str(probe_dir)
    env.update(extra)
    return env


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL it after ``STOP_TIMEOUT``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


def terminate(server: RunningServer, *, timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM the server's main process only (as a service manager does); its exit code, or None."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.process.pid, signal.SIGTERM)
    try:
        return server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def _is_ready(port: int) -> bool:
    try:
        return fetch(port, "/health", timeout=1.0).status == 200
    except OSError:
        return False


def _start(spec: ServerSpec, probe_dir: Path, log_path: Path) -> RunningServer:
    port = free_port()
    with log_path.open("ab") as log:
        log.write(f"--- {spec.name} on {HOST}:{port}\n".encode())
        log.flush()
        process = subprocess.Popen(
            spec.argv(port),
            cwd=WORKTREE,
            env=server_env(probe_dir, spec.env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the stop reaches gunicorn's workers
        )
    server = RunningServer(spec, port, probe_dir, log_path, process)
    try:
        ready = poll(
            lambda: process.poll() is not None or _is_ready(port), timeout=START_TIMEOUT, interval=0.05
        )
        code = process.poll()
        if code is not None or not ready:
            why = f"exited with code {code}" if code is not None else f"was not ready in {START_TIMEOUT}s"
            raise ServerStartError(f"{spec.name} on port {port} {why}; its output:\n{server.log_text()}")
    except BaseException:
        stop(process)
        raise
    return server


@contextlib.contextmanager
def running_server(spec: ServerSpec, probe_dir: Path) -> Iterator[RunningServer]:
    """The server, listening and answering /health; stopped on exit, whatever happened.

    Skips the test when the server cannot run on this machine (``ServerSpec.available``).
    """
    if reason := spec.available():
        pytest.skip(reason)
    log_path = probe_dir / "server.log"
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            server = _start(spec, probe_dir, log_path)
            break
        except ServerStartError:
            if attempt == START_ATTEMPTS:
                raise
    try:
        yield server
    finally:
        stop(server.process)


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    framing: str
    """How the body's end was known: length, chunked, close (connection closed) or none."""
    sent_at: float
    """time.time() just before the request was sent."""
    complete_at: float
    """time.time() when the client had the whole response (its framing said so)."""

    @property
    def seconds_to_body(self) -> float:
        return self.complete_at - self.sent_at


class _Reader:
    def __init__(self, sock: socket.socket, buffered: bytes) -> None:
        self._sock = sock
        self._buffer = bytearray(buffered)

    @property
    def buffered(self) -> bool:
        return bool(self._buffer)

    def _fill(self, what: str) -> None:
        chunk = self._sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError(f"connection closed inside {what}")
        self._buffer += chunk

    def exactly(self, count: int, what: str) -> bytes:
        while len(self._buffer) < count:
            self._fill(what)
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def line(self, what: str) -> bytes:
        while b"\r\n" not in self._buffer:
            self._fill(what)
        line, _, rest = bytes(self._buffer).partition(b"\r\n")
        self._buffer[:] = rest
        return line

    def until_eof(self) -> bytes:
        while chunk := self._sock.recv(1 << 20):
            self._buffer += chunk
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def chunked(self) -> bytes:
        body = bytearray()
        while size := int(self.line("a chunk size").split(b";")[0], 16):
            body += self.exactly(size, "a chunk")
            self.exactly(2, "a chunk's CRLF")
        while self.line("the trailer"):
            pass
        return bytes(body)


def fetch(
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    protocol: str = "HTTP/1.1",
    timeout: float = 10.0,
) -> RawResponse:
    """One request over a fresh socket (``Connection: close``), the response read by its framing.

    "The client has the response" means what an HTTP client would conclude: all the bytes a
    Content-Length announced, the last chunk of a chunked body, or, for a body framed by the
    connection, the server closing it. HEAD, 204 and 304 responses end with their headers.
    """
    lines = [f"{method} {path} {protocol}", f"Host: {HOST}:{port}", "Connection: close"]
    lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sent_at = time.time()
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        reader = _Reader(sock, b"")
        try:
            status_line = reader.line("the status line").decode("latin-1")
        except ConnectionError:
            if reader.buffered:
                raise
            # uWSGI's answer to an exception escaping the app: it closes the connection.
            return RawResponse(EMPTY_REPLY, {}, b"", "none", sent_at, time.time())
        response_headers: dict[str, str] = {}
        while header := reader.line("the headers").decode("latin-1"):
            key, _, value = header.partition(":")
            response_headers[key.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        if method == "HEAD" or status in NO_BODY_STATUSES or status < 200:
            framing, body = "none", b""
        elif "chunked" in response_headers.get("transfer-encoding", "").lower():
            framing, body = "chunked", reader.chunked()
        elif "content-length" in response_headers:
            framing = "length"
            body = reader.exactly(int(response_headers["content-length"]), "the body")
        else:
            framing, body = "close", reader.until_eof()
        complete_at = time.time()
    return RawResponse(status, response_headers, body, framing, sent_at, complete_at)

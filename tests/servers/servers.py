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

from tests.servers.probe_app import PROBE_DIR_ENV

T = TypeVar("T")

WORKTREE = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
APP_FACTORY = "tests.servers.probe_app:make_app"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
SCRUBBED_ENV_PREFIXES = ("APP_DEFERRED_TASK_", "DEFERRED_TASK_", "APP_LOG_LEVEL")


@dataclass(frozen=True)
class ServerSpec:
    name: str
    argv: Callable[[int], list[str]]
    """The command line, given the port to listen on."""
    env: Mapping[str, str] = field(default_factory=dict)


def _gunicorn(*worker_args: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return [
            sys.executable, "-m", "gunicorn",
            "--bind", f"{HOST}:{port}",
            "--workers", "1",
            *worker_args,
            "--timeout", "30",
            "--graceful-timeout", "3",
            "--no-control-socket",  # gunicorn 24+: a shared default path under ~/.gunicorn
            f"{APP_FACTORY}()",
        ]

    return argv


def _waitress(port: int) -> list[str]:
    return [
        sys.executable, "-m", "waitress",
        f"--listen={HOST}:{port}", "--threads=4", "--call", APP_FACTORY,
    ]


GUNICORN_SYNC = ServerSpec("gunicorn-sync", _gunicorn("--worker-class", "sync"))
GUNICORN_GTHREAD = ServerSpec("gunicorn-gthread", _gunicorn("--worker-class", "gthread", "--threads", "4"))
WAITRESS = ServerSpec("waitress", _waitress)


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
    """The server, listening and answering /health; stopped on exit, whatever happened."""
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
    sent_at: float
    """time.time() just before the request was sent."""
    complete_at: float
    """time.time() when the last byte of the Content-Length body had arrived."""

    @property
    def seconds_to_body(self) -> float:
        return self.complete_at - self.sent_at


def fetch(port: int, path: str, *, timeout: float = 10.0) -> RawResponse:
    """GET over a fresh socket with ``Connection: close``; reads exactly Content-Length bytes.

    It does not wait for the server to close the connection: "the client has the response"
    means it has all the bytes the headers announced.
    """
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
        sent_at = time.time()
        sock.sendall(request.encode("ascii"))
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed inside the headers: {bytes(buffer)!r}")
            buffer += chunk
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise AssertionError(f"no Content-Length in the response to {path}: {headers}")
        length = int(headers["content-length"])
        body = bytearray(rest)
        while len(body) < length:
            chunk = sock.recv(min(1 << 20, length - len(body)))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(body)} of {length} body bytes")
            body += chunk
        complete_at = time.time()
    return RawResponse(int(status_line.split()[1]), headers, bytes(body), sent_at, complete_at)

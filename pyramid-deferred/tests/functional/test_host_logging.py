"""The add-on's lines obey the host app's logging configuration, as Pyramid apps write it: an .ini
file whose ``[loggers]``, ``[handler_console]`` and ``[formatter_generic]`` pserve applies
(``pyramid.paster.setup_logging``, that is ``logging.config.fileConfig``) before it loads the app
from the same file. The app runs in a process of its own, its stderr is what the user sees.

- The cookiecutter starter's production set-up (root at WARN, one console handler): a request
  whose tasks run normally writes nothing (no record is even built); a task that overruns or
  fails is written by the console handler, in the .ini's format, with its traceback.
- With docs/logging.md's section (``[logger_pyramid_deferred]`` at DEBUG, its own handler and a
  formatter with ``%(request_id)s``): each task's DEBUG line, every one with the request's id.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyramid.paster import get_app, setup_logging
from webtest import TestApp

from pyramid_deferred.hook import get_hook

HOST_APP = """
import time
from pyramid.config import Configurator
from pyramid.response import Response


def main(global_config, **settings):
    config = Configurator(settings=settings)
    config.include("pyramid_deferred")
    config.add_route("order", "/order")
    config.add_view(order, route_name="order")
    config.add_route("broken", "/broken")
    config.add_view(broken, route_name="broken")
    return config.make_wsgi_app()


def order(request):
    runner = request.deferred_task
    runner.defer(lambda: print("ran meta.purchase"), max_cost_seconds=1, name="meta.purchase")
    runner.defer(lambda: print("ran matomo.flush"), max_cost_seconds=1, name="matomo.flush")
    return Response("ordered")


def broken(request):
    def fails():
        raise RuntimeError("the CRM refused the call")

    request.deferred_task.defer(lambda: time.sleep(0.02), max_cost_seconds=0.001, name="crm.slow")
    request.deferred_task.defer(fails, max_cost_seconds=1, name="crm.sync")
    return Response("accepted")
"""
APP_SECTION = """
[app:main]
use = call:{module}:main
deferred_task.strategy = close
"""
PSERVE_PROBE = """
import sys
from pyramid.paster import get_app, setup_logging
from webtest import TestApp

ini, paths = sys.argv[1], sys.argv[2:]
setup_logging(ini)  # what pserve does first, then it loads the app from the same file
app = TestApp(get_app(ini))
for path in paths:  # strategy close: a request's tasks have run when get() returns
    print(app.get(path, headers={"X-Request-ID": "req" + path.replace("/", "-")}).text, flush=True)
    print(f"=== {path}", file=sys.stderr, flush=True)
"""
STARTER_LOGGING = """
[loggers]
keys = root, shop

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console

[logger_shop]
level = WARN
handlers =
qualname = shop

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s:%(lineno)s][%(threadName)s] %(message)s
"""
ADD_ON_AT_DEBUG = """
[loggers]
keys = root, pyramid_deferred

[handlers]
keys = console, deferred

[formatters]
keys = generic, deferred

[logger_root]
level = WARN
handlers = console

[logger_pyramid_deferred]
level = DEBUG
handlers = deferred
qualname = pyramid_deferred
propagate = 0

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[handler_deferred]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = deferred

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s:%(lineno)s][%(threadName)s] %(message)s

[formatter_deferred]
format = %(asctime)s %(levelname)-6s [%(name)s][%(request_id)s] %(message)s
"""
GENERIC_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]{4,5}) \[(?P<name>[\w.]+):\d+\]\[MainThread\] "
    r"(?P<message>.*)"
)
DEFERRED_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) +\[(?P<name>[\w.]+)\]\[(?P<request_id>[^\]]+)\] "
    r"(?P<message>.*)"
)


class Served:
    """What the process wrote: its responses and tasks' prints (stdout), and its stderr (the
    .ini's console) cut per request."""

    def __init__(self, stdout: str, stderr: str, paths: tuple[str, ...]) -> None:
        self.stdout = stdout.splitlines()
        self.stderr: dict[str, str] = {}
        rest = stderr
        for path in paths:
            before, marker, rest = rest.partition(f"=== {path}\n")
            assert marker, f"no end marker for {path} in {stderr!r}"
            self.stderr[path] = before
        assert rest == "", f"written after the last request: {rest!r}"


def served(tmp_path: Path, logging_sections: str, *paths: str) -> Served:
    """The host app in a process of its own, set up as pserve does from a production.ini."""
    (tmp_path / "host_app.py").write_text(HOST_APP)
    ini = tmp_path / "production.ini"
    ini.write_text(APP_SECTION.format(module="host_app") + logging_sections)
    env = {key: value for key, value in os.environ.items() if not key.startswith("APP_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])
    out = subprocess.run([sys.executable, "-c", PSERVE_PROBE, str(ini), *paths], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return Served(out.stdout, out.stderr, paths)


def test_under_the_starter_s_production_ini_a_normal_request_writes_nothing(tmp_path):
    run = served(tmp_path, STARTER_LOGGING, "/order")
    assert run.stdout == ["ran meta.purchase", "ran matomo.flush", "ordered"]
    assert run.stderr["/order"] == ""


def test_under_the_starter_s_production_ini_an_overrun_and_a_failure_are_written_in_its_format(tmp_path):
    run = served(tmp_path, STARTER_LOGGING, "/order", "/broken")
    assert run.stderr["/order"] == ""
    err = run.stderr["/broken"]
    lines = [found for line in err.splitlines() if (found := GENERIC_LINE.fullmatch(line))]
    assert [(line["level"], line["name"]) for line in lines] == [
        ("WARNI", "pyramid_deferred.core.runner"), ("ERROR", "pyramid_deferred.core.runner"),
    ]
    assert lines[0]["message"].startswith("Deferred task crm.slow overran its declared cost: took 0.0")
    assert lines[1]["message"].startswith("Deferred task crm.sync failed after 0.0")
    traceback = err.split(lines[1]["message"], 1)[1]
    assert traceback.lstrip("\n").startswith("Traceback (most recent call last)")
    assert traceback.rstrip().endswith("RuntimeError: the CRM refused the call")


def test_with_the_add_on_s_logger_at_debug_each_task_s_line_shows_the_request_id(tmp_path):
    run = served(tmp_path, ADD_ON_AT_DEBUG, "/order")
    lines = [DEFERRED_LINE.fullmatch(line) for line in run.stderr["/order"].splitlines()]
    assert lines and all(lines), "every line in the add-on's format, none in the console's (propagate = 0)"
    seen = [(m["level"], m["name"], m["request_id"], m["message"]) for m in lines if m is not None]
    assert [(level, name, rid) for level, name, rid, _ in seen] == [
        ("DEBUG", "pyramid_deferred.core.runner", "req-order"),
    ] * 4
    messages = [message for *_, message in seen]
    assert messages[0] == "Running 2 deferred task(s) via close: meta.purchase, matomo.flush"
    assert messages[1].startswith("Ran deferred task meta.purchase (priority 50, cost 1s) in 0.0")
    assert messages[2].startswith("Ran deferred task matomo.flush (priority 50, cost 1s) in 0.0")
    assert messages[3].startswith("Deferred tasks done in 0.0") and messages[3].endswith(": 2 executed")


@pytest.fixture
def stdlib_logging_restored() -> Iterator[None]:
    """For an .ini applied in this process: every logger's level, handlers, propagation and
    disabled flag as they were before the test, the .ini's handlers closed."""
    root = logging.getLogger()
    loggers = {name: found for name, found in logging.Logger.manager.loggerDict.items()
               if isinstance(found, logging.Logger)}
    saved = {name: (lg.level, lg.handlers[:], lg.propagate, lg.disabled) for name, lg in loggers.items()}
    root_level, root_handlers = root.level, root.handlers[:]
    yield
    for name, found in logging.Logger.manager.loggerDict.items():
        if isinstance(found, logging.Logger):
            level, handlers, propagate, disabled = saved.get(name, (logging.NOTSET, [], True, False))
            for handler in found.handlers:
                if handler not in handlers:
                    handler.close()
            found.handlers, found.propagate, found.disabled = handlers, propagate, disabled
            found.setLevel(level)
    for handler in root.handlers:
        if handler not in root_handlers:
            handler.close()
    root.handlers = root_handlers
    root.setLevel(root_level)


@pytest.fixture
def records_built() -> Iterator[list[logging.LogRecord]]:
    """Every record of the add-on's loggers that was made at all, written or not."""
    built: list[logging.LogRecord] = []
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name.startswith("pyramid_deferred"):
            built.append(record)
        return record

    logging.setLogRecordFactory(factory)
    yield built
    logging.setLogRecordFactory(previous)


def test_below_the_ini_s_levels_no_record_is_even_built(tmp_path, stdlib_logging_restored, records_built):
    """The hot path: a request whose tasks run normally, under root at WARN, makes no record at
    all (``isEnabledFor`` first); a failing one makes exactly the lines that are written."""
    (tmp_path / "host_app.py").write_text(HOST_APP)
    ini = tmp_path / "production.ini"
    ini.write_text(APP_SECTION.format(module="host_app") + STARTER_LOGGING)
    sys.path.insert(0, str(tmp_path))
    try:
        setup_logging(str(ini))
        app = TestApp(get_app(str(ini)))
        try:
            assert app.get("/order").text == "ordered"
            assert records_built == []
            assert app.get("/broken").text == "accepted"
            assert [(r.levelname, r.name) for r in records_built] == [
                ("WARNING", "pyramid_deferred.core.runner"), ("ERROR", "pyramid_deferred.core.runner"),
            ]
        finally:
            get_hook(app.app.registry).worker.shutdown(grace_seconds=5)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("host_app", None)

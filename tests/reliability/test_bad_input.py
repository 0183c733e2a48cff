"""Bad input: every environment variable and every ``defer()`` argument of ``tests/reliability/bad_input.py``,
and the README's table, which must be that module's rendering."""

from __future__ import annotations

import os
import re
import runpy
from typing import Any

import pytest

from app.deferred_task import DeferredTaskRunner
from app.factory import build_container
from containers import Container
from tests.reliability.bad_input import (
    ACCEPTED,
    ARGUMENT_CASES,
    AS_UNSET,
    ENV_ROWS,
    MISSING,
    PREFIXES,
    README,
    REFUSED,
    VALUES,
    EnvRow,
    readme_section,
    render,
    without,
)

GUNICORN_CONF = README.parent / "gunicorn.conf.py"

ENV_CASES = [
    pytest.param(row, variable, kind, id=f"{variable}-{kind}")
    for row in ENV_ROWS
    for variable in row.variables
    for kind in VALUES
]


def start_up(row: EnvRow, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """What start-up makes of ``environ``: the container's settings, or gunicorn.conf.py's globals."""
    if row.read_by == "gunicorn.conf.py":
        for name in [key for key in os.environ if key == "WEB_CONCURRENCY"]:
            monkeypatch.delenv(name)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(GUNICORN_CONF))["workers"]
    return settings_of(build_container({}, environ))


def settings_of(container: Container) -> tuple[object, ...]:
    return (
        container.config(),
        container.meta_settings(),
        container.advisable_ai_settings(),
        container.manago_settings(),
        container.matomo_settings(),
        container.breaker_store_settings(),
    )


@pytest.mark.parametrize(("row", "variable", "kind"), ENV_CASES)
def test_every_variable_with_every_kind_of_invalid_value(
    row: EnvRow, variable: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = VALUES[kind]
    environ = {**row.companions, variable: value}
    outcome = row.outcomes[kind]

    if outcome == REFUSED:
        with pytest.raises(ValueError) as raised:
            start_up(row, environ, monkeypatch)
        message = str(raised.value)
        assert variable in message, f"the error does not name {variable}: {message}"
        if row.secret and value:
            assert value not in message, f"the error echoes the secret: {message}"
    elif outcome == AS_UNSET:
        assert start_up(row, environ, monkeypatch) == start_up(row, without(environ, variable), monkeypatch)
    else:
        assert outcome == ACCEPTED
        start_up(row, environ, monkeypatch)


def test_the_table_covers_every_variable_the_application_reads() -> None:
    """A new variable must get a row: compared with the names the code reads."""
    tried = {variable for row in ENV_ROWS for variable in row.variables}
    sources = [README.parent / "gunicorn.conf.py", *README.parent.glob("config/*.py"),
               *README.parent.glob("app/**/*.py")]
    read = set()
    for path in sources:
        text = path.read_text()
        read |= _quoted_env_names(text)
    read -= {"GUNICORN_BIND", "PROBE_DIR"}  # left to gunicorn; tests only
    assert read <= tried, f"variables without a row: {sorted(read - tried)}"


ENV_NAME = re.compile(
    r'"((?:APP|DEFERRED_TASK|META|ADVISABLE_AI|MANAGO|MATOMO|CIRCUIT_BREAKER|PROMETHEUS|WEB|GUNICORN)_[A-Z_]+)"'
)
PREFIXED_NAME = re.compile(r'f"\{prefix\}_([A-Z_]+)"')


def _quoted_env_names(text: str) -> set[str]:
    """Variable names quoted in the source, ``f"{prefix}_X"`` expanded for each service."""
    prefixed = {f"{prefix}_{suffix}" for suffix in PREFIXED_NAME.findall(text) for prefix in PREFIXES}
    return set(ENV_NAME.findall(text)) | prefixed


ARGUMENT_CALLS = [
    pytest.param(case, value, id=f"{case.argument}-{index}")
    for case in ARGUMENT_CASES
    for index, value in enumerate(case.values)
]


@pytest.mark.parametrize(("case", "value"), ARGUMENT_CALLS)
def test_every_defer_argument_with_a_wrong_type_or_value_is_refused_at_the_call(case, value) -> None:
    runner = DeferredTaskRunner()
    arguments: dict[str, Any] = {"task": lambda: None, "max_cost_seconds": 1, "name": "a.task"}
    if value is MISSING:
        del arguments[case.argument]
    else:
        arguments[case.argument] = value
    task = arguments.pop("task")

    with pytest.raises(case.error) as raised:
        runner.defer(task, **arguments)

    assert case.argument in str(raised.value)
    assert not runner.has_tasks()
    if case.argument == "name":
        with pytest.raises(case.error, match="name"):
            runner.forget(value)


def test_the_readme_table_is_what_these_tests_try() -> None:
    assert readme_section(README.read_text()) == render(), (
        "README.md's bad-input table is stale: run `python -m tests.reliability.bad_input --write`"
    )

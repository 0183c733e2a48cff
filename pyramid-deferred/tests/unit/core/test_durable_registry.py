"""Only declared functions are durable: ``@durable_function`` puts a module-level function in the
registry that ``durable()`` and the engine's worker both read; a path that is not there is refused
and nothing is imported for it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyramid_deferred import testing as fx
from pyramid_deferred.durable import (
    NotDurableError,
    durable,
    durable_function,
    durable_function_paths,
    registered_function,
)


def undeclared(order_id: str) -> None:
    """A module-level function like a durable one, but never declared."""


@durable_function
def declared(order_id: str) -> None:
    """Declared: durable() accepts it."""


def test_durable_refuses_a_function_that_was_not_declared_naming_the_decorator():
    with pytest.raises(NotDurableError, match="not declared durable: decorate it with @durable_function"):
        durable(undeclared, "o-1")


def test_a_declared_function_is_returned_unchanged_and_known_by_its_module_and_name():
    path = f"{declared.__module__}:declared"
    assert declared("o-1") is None  # still an ordinary function
    assert path in durable_function_paths() and registered_function(path) is declared
    assert durable(declared, "o-1").function_path == path
    assert durable(path, "o-1").function is declared  # by path too: through the registry


def test_only_a_module_level_function_can_be_declared():
    def closure() -> None: ...

    with pytest.raises(NotDurableError, match="lambda or a closure"):
        durable_function(lambda: None)
    with pytest.raises(NotDurableError, match="lambda or a closure"):
        durable_function(closure)
    with pytest.raises(NotDurableError, match="must be callable"):
        durable_function("os:system")  # type: ignore[type-var]


@pytest.mark.parametrize("path", ["os:system", "builtins:eval", "subprocess:run", "nonsense", ""])
def test_a_path_that_names_anything_else_is_refused(path):
    with pytest.raises(NotDurableError, match="is not a durable function of this process"):
        registered_function(path)
    with pytest.raises(NotDurableError):
        durable(path, "id")


def test_resolving_a_path_never_imports_its_module():
    """What the worker does with a message's ``function``: a module that is not imported yet stays
    so (``this`` prints the Zen of Python when imported; ``antigravity`` opens a browser). Checked
    in a fresh interpreter, where neither was ever imported."""
    code = (
        "import sys\n"
        "from pyramid_deferred.durable import NotDurableError, registered_function\n"
        "for path in ('this:s', 'antigravity:fly', 'tests_never_written.module:run'):\n"
        "    try:\n"
        "        registered_function(path)\n"
        "    except NotDurableError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit(f'{path} resolved')\n"
        "names = ('this', 'antigravity', 'tests_never_written')\n"
        "print(sorted(name for name in names if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # not imported, and the Zen was never printed


def test_the_add_on_s_test_functions_are_declared():
    assert {"pyramid_deferred.testing:record_durable", "pyramid_deferred.testing:fail_durable"} <= set(
        durable_function_paths()
    )
    assert registered_function("pyramid_deferred.testing:record_durable") is fx.record_durable

"""The core (queue, budget, report, hand-off) imports no web framework: it runs anywhere. The
add-on as a whole logs through stdlib ``logging`` only: no module imports loguru."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pyramid_deferred.core

CORE = Path(pyramid_deferred.core.__file__).parent
PACKAGE = CORE.parent
ALLOWED_ROOTS = {"__future__", "pyramid_deferred"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_core_imports_only_the_standard_library_and_itself():
    stdlib = sys.stdlib_module_names
    modules = sorted(CORE.glob("*.py"))
    assert len(modules) >= 5  # task, runner, report, log, handoff: the check saw the core
    for path in modules:
        for name in imported_modules(path):
            root = name.split(".")[0]
            assert root in stdlib or root in ALLOWED_ROOTS, f"{path.name} imports {name}"
            if root == "pyramid_deferred":
                assert name.startswith("pyramid_deferred.core"), f"{path.name} imports {name}"


def test_no_module_of_the_add_on_imports_loguru():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) >= 30  # the whole package was seen
    for path in modules:
        roots = {name.split(".")[0] for name in imported_modules(path)}
        assert "loguru" not in roots, f"{path.relative_to(PACKAGE)} imports loguru"


def test_importing_the_package_imports_no_pyramid_until_it_is_included():
    """A service or a script can use the runner, the scope and the settings without Pyramid."""
    code = (
        "import sys, pyramid_deferred, pyramid_deferred.values;"
        "print(sorted(m for m in sys.modules"
        " if m.split('.')[0] in {'pyramid', 'webob', 'prometheus_client'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

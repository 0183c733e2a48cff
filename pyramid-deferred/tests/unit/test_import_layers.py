"""The add-on's modules import each other one way: from the Pyramid glue down to the framework-free
core, with no circle, counting every import (at the top, under TYPE_CHECKING, inside a function):
a module's place in a batch's path can be read top-down."""

from __future__ import annotations

import ast
from pathlib import Path

import pyramid_deferred

PACKAGE = Path(pyramid_deferred.__file__).parent
NAME = "pyramid_deferred"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(module: str) -> set[str]:
    """The add-on's modules ``module`` imports (a ``from package import name`` counts the submodule
    when ``name`` is one, else the package)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith(NAME)}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(NAME):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    found.discard(module)
    return {name for name in found if name in MODULES}


def circles() -> list[list[str]]:
    graph = {module: imports_of(module) for module in MODULES}
    found: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                found.append([*path[path.index(imported):], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_no_module_of_the_add_on_imports_back_up_a_circle():
    assert circles() == []


def test_the_core_imports_nothing_of_the_glue():
    core = [module for module in MODULES if module.startswith(f"{NAME}.core")]
    reaching_up = {module: sorted(name for name in imports_of(module) if not name.startswith(f"{NAME}.core"))
                   for module in core}
    assert {module: names for module, names in reaching_up.items() if names} == {}


def test_the_check_finds_a_circle_when_there_is_one(monkeypatch):
    """A negative control: two modules importing each other are found."""
    real = imports_of

    def with_a_circle(module: str) -> set[str]:
        extra = {f"{NAME}.tween"} if module == f"{NAME}.batch" else set()
        return real(module) | extra

    monkeypatch.setitem(globals(), "imports_of", with_a_circle)
    assert any(f"{NAME}.batch" in circle and f"{NAME}.tween" in circle for circle in circles())

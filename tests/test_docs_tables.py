"""The settings tables in README.md and docs/configuration.md are the current rendering of the
settings declarations (``tests/docs_tables.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs_tables import COMMAND, ROOT, TARGETS, render, section

CASES = [
    pytest.param(path, table, id=f"{path.relative_to(ROOT)}-{table}")
    for path, tables in TARGETS.items()
    for table in tables
]


@pytest.mark.parametrize(("path", "table"), CASES)
def test_the_file_holds_the_current_settings_table(path: Path, table: str) -> None:
    name = path.relative_to(ROOT)
    try:
        held = section(path.read_text(encoding="utf-8"), table)
    except ValueError as missing:
        pytest.fail(f"{name} has no {table} table: {missing}; add the markers, then run `{COMMAND}`")
    assert held == render(table), f"{name}'s {table} table is stale: run `{COMMAND}`"

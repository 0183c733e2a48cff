"""No declared floor admits a release with a known advisory: every requirement on an affected
package, in both pyproject files (dependencies and every extra), starts at the fixed release.

pip-audit checks what is installed, against a service CI cannot reach (docs/reliability.md says
how to run it where it can); this checks what a user may install, offline. Add an advisory here
when one is published for a dependency, with its id.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECTS = (ROOT / "pyproject.toml", ROOT / "pyramid-deferred" / "pyproject.toml")
LOWER_BOUNDS = (">=", ">", "==", "~=", "===")


@dataclass(frozen=True)
class Advisory:
    id: str
    package: str
    fixed: str
    """The first release without it."""
    last_affected: str
    """The last release with it: a floor that admits it is what this test exists to catch."""


ADVISORIES = (
    Advisory("CVE-2023-40587", "pyramid", fixed="2.0.2", last_affected="2.0.1"),
    Advisory("CVE-2024-42353", "webob", fixed="1.8.8", last_affected="1.8.7"),
    Advisory("CVE-2024-49768", "waitress", fixed="3.0.1", last_affected="3.0.0"),
    Advisory("CVE-2024-49769", "waitress", fixed="3.0.1", last_affected="3.0.0"),
    Advisory("CVE-2024-1135", "gunicorn", fixed="22.0.0", last_affected="21.2.0"),
    Advisory("CVE-2024-6827", "gunicorn", fixed="23.0.0", last_affected="22.0.0"),
)


def declared(pyproject: Path) -> list[tuple[str, Requirement]]:
    """Each requirement of the file, with where it is declared (``dependencies``, ``extra test``)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    found = [("dependencies", Requirement(text)) for text in project.get("dependencies", [])]
    for extra, texts in project.get("optional-dependencies", {}).items():
        found += [(f"extra {extra}", Requirement(text)) for text in texts]
    return found


def floor(requirement: Requirement) -> Version | None:
    """The lowest release the requirement admits, as far as its lower bounds say (None: none)."""
    bounds = [Version(spec.version) for spec in requirement.specifier if spec.operator in LOWER_BOUNDS]
    return max(bounds) if bounds else None


def admitted(requirement: Requirement, advisory: Advisory) -> str | None:
    """Why the requirement admits a release with the advisory, or None."""
    if canonicalize_name(requirement.name) != advisory.package:
        return None
    lowest = floor(requirement)
    if lowest is None or lowest < Version(advisory.fixed):
        return f"{requirement} admits releases before {advisory.fixed} ({advisory.id})"
    if requirement.specifier.contains(advisory.last_affected, prereleases=True):
        return f"{requirement} admits {advisory.last_affected} ({advisory.id})"
    return None


def problems(requirements: list[tuple[str, Requirement]]) -> list[str]:
    return [f"{where}: {why}" for where, requirement in requirements for advisory in ADVISORIES
            if (why := admitted(requirement, advisory)) is not None]


@pytest.mark.parametrize("pyproject", PYPROJECTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_declared_floor_admits_a_release_with_a_known_advisory(pyproject):
    assert not problems(declared(pyproject))


def test_every_advisory_s_package_is_declared_somewhere():
    """An advisory whose package no file declares checks nothing: fix the name, or drop it."""
    names = {canonicalize_name(requirement.name) for path in PYPROJECTS for _, requirement in declared(path)}
    assert {advisory.package for advisory in ADVISORIES} <= names


@pytest.mark.parametrize(("text", "ids"), [
    ("pyramid>=2.0,<3", ["CVE-2023-40587"]),
    ("waitress>=3.0,<4", ["CVE-2024-49768", "CVE-2024-49769"]),
    ("gunicorn>=22", ["CVE-2024-6827"]),
    ("gunicorn", ["CVE-2024-1135", "CVE-2024-6827"]),
    ("WebOb>=1.8,!=1.8.7", ["CVE-2024-42353"]),
    ("gunicorn>=23.0.0", []),
    ("waitress==3.0.2", []),
], ids=["pyramid-2.0", "waitress-3.0", "gunicorn-22", "no-floor", "webob-gap", "gunicorn-23", "pinned"])
def test_the_floors_this_project_had_are_caught(text, ids):
    """The check itself: the floors before this test (and a floor with a gap) are refused."""
    found = problems([("dependencies", Requirement(text))])
    assert [why.rsplit("(", 1)[1].rstrip(")") for why in found] == ids

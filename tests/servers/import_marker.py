"""A module that leaves a mark when it is imported: a message naming ``run`` must never make a
worker import it (tests/servers/test_durable_messages.py checks the mark is absent)."""

from __future__ import annotations

import os
from pathlib import Path

MARK = "import_marker.imported"

Path(os.environ.get("PROBE_DIR", "."), MARK).write_text(f"imported by pid {os.getpid()}\n")


def run(*args: object) -> None:
    """What the forged message names."""
    Path(os.environ.get("PROBE_DIR", "."), "import_marker.ran").write_text(repr(args))

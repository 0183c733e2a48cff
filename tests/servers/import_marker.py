"""A module that leaves a mark when it is imported: a message naming ``run`` must never make a
worker import it (tests/servers/test_durable_messages.py checks that the mark, ``MARK`` under the
worker's ``PROBE_DIR``, is absent). Nothing else imports it: without ``PROBE_DIR`` it raises."""

from __future__ import annotations

import os
from pathlib import Path

MARK = "import_marker.imported"

Path(os.environ["PROBE_DIR"], MARK).write_text(f"imported by pid {os.getpid()}\n")


def run(*args: object) -> None:
    """What the forged message names."""
    Path(os.environ["PROBE_DIR"], "import_marker.ran").write_text(repr(args))

"""Loguru for the in-process benchmarks: the project's own ``setup_logging``, console to /dev/null.

The formatting and filtering a production process pays still happen (the add-on's stdlib records
reach loguru by the shop's bridge, below the lowest sink level they are never built); only the
console's bytes vanish (the DEFERRED_TASK file sink, at WARNING, goes to a temporary directory).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import TextIO

from config.logging import setup_logging

_devnull: TextIO | None = None
_log_dir: tempfile.TemporaryDirectory[str] | None = None
_active: Iterator[None] | None = None


def configure(console_level: str, *, file_level: str = "WARNING") -> None:
    """``console_level`` "INFO" is production.ini (one summary line per run); "WARNING" is quiet."""
    global _devnull, _log_dir, _active
    if _devnull is None or _log_dir is None:
        _devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        _log_dir = tempfile.TemporaryDirectory(prefix="bench-logs-")
    # setup_logging() removes every sink itself; the previous resource is simply dropped.
    _active = setup_logging(
        threshold=file_level, max_files=1, path=os.path.join(_log_dir.name, "deferred_task.log"),
        app_log_level=console_level,
    )
    with contextlib.redirect_stderr(_devnull):  # loguru keeps the stream it is given: /dev/null
        next(_active)

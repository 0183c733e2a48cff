"""Loguru for the in-process benchmarks: production's levels, sinks that write to /dev/null.

The formatting and filtering a production process pays still happen; only the bytes vanish.
"""

from __future__ import annotations

import os
from typing import TextIO

from loguru import logger

from app.deferred_task.log import ensure_notice_level
from config.logging import CONSOLE_FORMAT, FILE_FORMAT, is_deferred_task_record

_devnull: TextIO | None = None


def configure(console_level: str, *, file_level: str = "WARNING") -> None:
    """``console_level`` "INFO" is production.ini (one summary line per run); "WARNING" is quiet."""
    global _devnull
    if _devnull is None:
        _devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    ensure_notice_level()
    logger.remove()
    logger.configure(extra={"channel": "app"})
    logger.add(_devnull, level=console_level, format=CONSOLE_FORMAT, backtrace=False, diagnose=False)
    logger.add(
        _devnull, level=file_level, filter=is_deferred_task_record, format=FILE_FORMAT,
        backtrace=False, diagnose=False,
    )

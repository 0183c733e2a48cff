"""The DEFERRED_TASK loguru channel and the NOTICE level the spec logs skips at."""

from __future__ import annotations

from loguru import logger

CHANNEL = "DEFERRED_TASK"
NOTICE = "NOTICE"
NOTICE_NO = 25  # between INFO (20) and WARNING (30), as in syslog and Monolog


def ensure_notice_level() -> None:
    try:
        logger.level(NOTICE)
    except ValueError:
        logger.level(NOTICE, no=NOTICE_NO, color="<cyan><bold>", icon="!")


ensure_notice_level()

deferred_task_logger = logger.bind(channel=CHANNEL)

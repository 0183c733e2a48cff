"""One WARNING when Redis stops taking this process's runs, one INFO when it takes them again:
never a line per failed flush, and never the URL (an error's text goes through ``mask_url``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pyramid_deferred.core.log import get_logger
from pyramid_deferred.dashboard.recorder import safe_text
from pyramid_deferred.values import mask_url

log = get_logger(__name__)

MAX_ERROR_TEXT = 300


def describe(error: BaseException) -> str:
    """``ConnectionError: Error 111 connecting to 127.0.0.1:6379.``: the type and the masked text,
    one line (a reply from Redis is outside text: it must not forge a log line)."""
    return safe_text(f"{type(error).__name__}: {mask_url(str(error))}", MAX_ERROR_TEXT)


class Outage:
    """Whether Redis is failing this process's publisher, since when, and what it last said."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.since: float | None = None
        self.error = ""
        self.outages = 0
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException, *, dropped: int) -> None:
        with self._lock:
            self.error = describe(error)
            if self.since is not None:
                return
            self.since = self.clock()
            self.outages += 1
        log.warning(
            "Dashboard: Redis does not take this process's runs (%s); they are dropped and counted "
            "(%s so far) until it does, and the live page shows what it can. Said once per outage",
            self.error, dropped,
        )

    def recovered(self, *, dropped: int) -> None:
        with self._lock:
            if self.since is None:
                return
            lasted, self.since = self.clock() - self.since, None
        log.info(
            "Dashboard: Redis takes this process's runs again, after %.0f s (%s dropped in all)",
            lasted, dropped,
        )

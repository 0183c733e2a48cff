"""Process exit: let the hand-off worker drain within its grace period, and name what it could not run."""

from __future__ import annotations

import atexit
import signal
import threading
from types import FrameType
from typing import Any

from pyramid_deferred import uwsgi as uwsgi_trigger
from pyramid_deferred.core.handoff import HandOffWorker
from pyramid_deferred.watchdog import Watchdog


def install_shutdown(worker: HandOffWorker, watchdog: Watchdog, *, exit_on_sigterm: bool) -> None:
    """Drain ``worker`` at interpreter exit (gunicorn and pserve both exit through atexit), then
    name what any other batch still running leaves unrun (an inline batch a server cuts).

    Anything the app registered with ``atexit`` before (closing its HTTP clients, say) runs
    after the drain: atexit calls the last registered first.

    ``exit_on_sigterm``: make SIGTERM a normal exit where nobody handles it (pserve/waitress:
    by default SIGTERM kills Python without running atexit). gunicorn and uWSGI install their own
    handlers and exit normally after a graceful stop, so theirs are left alone.
    """
    def shutdown() -> None:
        worker.shutdown()
        watchdog.abandon_all(except_threads=worker.threads)
        watchdog.stop()

    atexit.register(shutdown)
    uwsgi: Any = uwsgi_trigger.uwsgi
    if uwsgi is not None:
        previous = getattr(uwsgi, "atexit", None)

        def uwsgi_atexit() -> None:
            shutdown()
            if callable(previous):
                previous()

        uwsgi.atexit = uwsgi_atexit
    in_main_thread = threading.current_thread() is threading.main_thread()
    # uWSGI's SIGTERM handlers are C handlers Python cannot see: never replace them.
    unhandled = uwsgi is None and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    if exit_on_sigterm and in_main_thread and unhandled:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)

"""Process exit: let the hand-off worker drain within its grace period, and name what it could not run;
then close the integrations' HTTP and Redis clients."""

from __future__ import annotations

import atexit
import signal
import threading
from types import FrameType
from typing import Any

from hooks import uwsgi_trigger


def install_shutdown(container: Any, *, handle_sigterm: bool) -> None:
    """Drain the hand-off worker at interpreter exit (gunicorn and pserve both exit through it).

    ``handle_sigterm``: make SIGTERM a normal exit where nobody else handles it (pserve/waitress:
    by default SIGTERM kills Python without running atexit). gunicorn and uWSGI install their own
    handlers and exit normally after a graceful stop, so theirs are left alone.
    """
    worker = container.handoff_worker()
    # atexit runs last-registered first: the drain, then the integrations' clients are closed.
    atexit.register(container.integration_clients.shutdown)
    atexit.register(worker.shutdown)
    uwsgi: Any = uwsgi_trigger.uwsgi
    if uwsgi is not None:
        previous = getattr(uwsgi, "atexit", None)

        def uwsgi_atexit() -> None:
            worker.shutdown()
            container.integration_clients.shutdown()  # a no-op if atexit does it again
            if callable(previous):
                previous()

        uwsgi.atexit = uwsgi_atexit
    in_main_thread = threading.current_thread() is threading.main_thread()
    # uWSGI's SIGTERM handlers are C handlers Python cannot see: never replace them.
    unhandled = uwsgi is None and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    if handle_sigterm and in_main_thread and unhandled:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)

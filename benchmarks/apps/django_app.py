"""Django for the peers section: configured in process, one URL, ``WSGIHandler`` called directly.

Django's post-response mechanism is the ``request_finished`` signal, sent when the server closes
the response. A signal is process-wide, so its receivers do not belong to one app:
:func:`receivers` connects ``count`` no-op receivers only while a case is timed, and the bare
request is the same handler with none connected (Django's own ``close_old_connections`` receiver
stays, as in every Django process).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator

from django.http import HttpRequest, HttpResponse
from django.urls import path

from benchmarks.apps.work import BODY, CONTENT_TYPE

SETTINGS = {
    "DEBUG": False,
    "SECRET_KEY": "benchmark-only, never served",
    "ALLOWED_HOSTS": ["*"],
    "ROOT_URLCONF": __name__,
    "MIDDLEWARE": [],
    "INSTALLED_APPS": [],
    "LOGGING_CONFIG": None,  # this process's logging stays the benchmarks' own
}
"""Django's defaults otherwise: no middleware, no apps, no database used."""


def none(request: HttpRequest) -> HttpResponse:
    return HttpResponse(BODY, content_type=CONTENT_TYPE)


urlpatterns = [path("bench/none", none)]


@functools.cache
def handler() -> Callable[..., Iterable[bytes]]:
    """The process's one WSGI callable, Django set up first (``settings.configure``, ``setup``)."""
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    if not settings.configured:
        settings.configure(**SETTINGS)
        django.setup(set_prefix=False)
    app: Callable[..., Iterable[bytes]] = WSGIHandler()
    return app


@contextlib.contextmanager
def receivers(count: int, receiver: Callable[..., object]) -> Iterator[None]:
    """``count`` receivers on ``request_finished`` for the duration of the block."""
    from django.core.signals import request_finished

    uids = [f"bench.noop.{index}" for index in range(count)]
    for uid in uids:
        request_finished.connect(receiver, weak=False, dispatch_uid=uid)
    try:
        yield
    finally:
        for uid in uids:
            request_finished.disconnect(dispatch_uid=uid)

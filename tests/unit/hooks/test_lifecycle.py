"""Process exit: the hand-off worker drains first, then the integrations' clients are closed."""

from __future__ import annotations

import atexit

from app.factory import build_container
from hooks.lifecycle import install_shutdown


def test_at_exit_the_worker_drains_before_the_integrations_clients_are_closed(monkeypatch):
    registered = []
    monkeypatch.setattr(atexit, "register", registered.append)
    container = build_container({}, environ={})
    client = container.http_client()
    drained_with_client_closed = []
    worker = container.handoff_worker()
    monkeypatch.setattr(worker, "shutdown", lambda *_: drained_with_client_closed.append(client.is_closed))
    install_shutdown(container, handle_sigterm=False)
    for callback in reversed(registered):  # atexit: last registered, first run
        callback()
    assert drained_with_client_closed == [False]  # the draining tasks could still send
    assert client.is_closed

"""Process exit: the hand-off worker drains through atexit; SIGTERM exits normally where nobody
else handles it."""

from __future__ import annotations

import atexit
import signal

import pytest

from pyramid_deferred.core.handoff import HandOffWorker
from pyramid_deferred.lifecycle import _exit_on_sigterm, install_shutdown
from pyramid_deferred.watchdog import Watchdog


@pytest.fixture
def registered(monkeypatch):
    callbacks: list[object] = []
    monkeypatch.setattr(atexit, "register", callbacks.append)
    return callbacks


@pytest.fixture
def sigterm():
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_at_exit_the_worker_drains_then_the_batches_still_running_are_named(registered, sigterm, monkeypatch):
    worker, watchdog = HandOffWorker(), Watchdog()
    calls: list[str] = []

    def step(name: str):
        def called(**kwargs: object) -> list[str]:
            calls.append(name)
            return []

        return called

    monkeypatch.setattr(worker, "shutdown", step("drain"))
    monkeypatch.setattr(watchdog, "abandon_all", step("name the rest"))
    install_shutdown(worker, watchdog, exit_on_sigterm=False)
    [at_exit] = registered
    at_exit()
    assert calls == ["drain", "name the rest"]


def test_an_unhandled_sigterm_becomes_a_normal_exit_that_runs_atexit(registered, sigterm):
    install_shutdown(HandOffWorker(), Watchdog(), exit_on_sigterm=True)
    assert signal.getsignal(signal.SIGTERM) is _exit_on_sigterm
    with pytest.raises(SystemExit) as exited:
        _exit_on_sigterm(signal.SIGTERM, None)
    assert exited.value.code == 128 + signal.SIGTERM


def test_a_server_s_own_sigterm_handler_is_left_alone(registered, sigterm):
    def servers_handler(signum, frame):
        pass

    signal.signal(signal.SIGTERM, servers_handler)
    install_shutdown(HandOffWorker(), Watchdog(), exit_on_sigterm=True)
    assert signal.getsignal(signal.SIGTERM) is servers_handler


def test_the_setting_off_leaves_sigterm_alone(registered, sigterm):
    install_shutdown(HandOffWorker(), Watchdog(), exit_on_sigterm=False)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

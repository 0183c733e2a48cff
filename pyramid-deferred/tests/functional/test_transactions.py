"""Transactions and retries as Pyramid apps run them: the real pyramid_tm and pyramid_retry.

pyramid_retry runs a request again when an attempt fails with a retryable error: the attempts
it retries never reach the client, so their tasks (``always`` ones too) are discarded, logged
once; only the final attempt's tasks run, once. A pyramid_tm transaction that is doomed or
aborted makes the request a failed one, whatever its status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.interfaces import ITweens
from pyramid.request import Request
from pyramid.response import Response
from pyramid_retry import RetryableException
from webtest import TestApp

from pyramid_deferred.hook import get_hook


class Shop:
    """A view that defers a purchase event and an ``always`` flush, failing on chosen attempts."""

    def __init__(self) -> None:
        self.trail: list[str] = []
        self.attempts = 0
        self.fail_attempts: set[int] = set()
        self.doom = False

    def view(self, request: Request) -> Response:
        attempt = self.attempts = self.attempts + 1
        runner = request.deferred_task
        runner.defer(lambda: self.trail.append(f"purchase-{attempt}"), max_cost_seconds=1,
                     name="meta.purchase")
        runner.defer(lambda: self.trail.append(f"flush-{attempt}"), max_cost_seconds=1,
                     name="matomo.flush", always=True)
        if self.doom:
            request.tm.doom()
        if attempt in self.fail_attempts:
            raise RetryableException(f"deadlock on attempt {attempt}")
        return Response(f"attempt {attempt}")


def retry_error_view(exc: RetryableException, request: Request) -> Response:
    return Response("conflict, try again", status=409)


@pytest.fixture
def make_app() -> Iterator[Callable[..., tuple[TestApp, Shop]]]:
    apps: list[TestApp] = []

    def make(*, tm: bool = True, retry: bool = True, error_view: bool = False) -> tuple[TestApp, Shop]:
        shop = Shop()
        config = Configurator(
            settings={"retry.attempts": "3", "tm.manager_hook": "pyramid_tm.explicit_manager"}
        )
        if retry:
            config.include("pyramid_retry")
        if tm:
            config.include("pyramid_tm")
        config.include("pyramid_deferred")
        if error_view:
            config.add_exception_view(retry_error_view, context=RetryableException)
        config.add_route("shop", "/")
        config.add_view(shop.view, route_name="shop")
        app = TestApp(config.make_wsgi_app())
        apps.append(app)
        return app, shop

    yield make
    for app in apps:
        get_hook(app.app.registry).worker.shutdown(grace_seconds=5)


def drained(app: TestApp) -> None:
    """Batches of requests that raised are handed to the worker thread: wait for them."""
    assert get_hook(app.app.registry).worker.shutdown(grace_seconds=5) == []


@pytest.mark.parametrize("error_view", [False, True], ids=["raised", "exception-view"])
def test_only_the_final_attempt_s_tasks_run_once_the_retried_ones_are_discarded_and_logged(
    make_app, logs, error_view
):
    app, shop = make_app(error_view=error_view)
    shop.fail_attempts = {1, 2}
    assert app.get("/").text == "attempt 3"
    drained(app)
    assert shop.trail == ["purchase-3", "flush-3"]
    discarded = logs.matching("retried by pyramid_retry")
    assert len(discarded) == 2  # one line per retried attempt, naming both tasks
    assert all("meta.purchase" in r.message and "matomo.flush" in r.message for r in discarded)


@pytest.mark.parametrize("error_view", [False, True], ids=["raised", "exception-view"])
def test_when_every_attempt_fails_the_last_one_runs_its_always_tasks_once(make_app, logs, error_view):
    app, shop = make_app(error_view=error_view)
    shop.fail_attempts = {1, 2, 3}
    if error_view:
        app.get("/", status=409)
    else:
        with pytest.raises(RetryableException):
            app.get("/")
    drained(app)
    assert shop.trail == ["flush-3"]
    assert len(logs.matching("retried by pyramid_retry")) == 2
    assert len(logs.matching("Discarded deferred task meta.purchase because the request failed")) == 1


def test_a_doomed_transaction_is_a_failed_request_even_with_a_200(make_app, logs):
    app, shop = make_app(retry=False)
    shop.doom = True
    assert app.get("/").status_int == 200
    assert shop.trail == ["flush-1"]  # no purchase event for a rolled-back order
    assert logs.matching("Discarded deferred task meta.purchase because the request failed")


def test_a_committed_transaction_runs_every_task(make_app):
    app, shop = make_app(retry=False)
    app.get("/")
    assert shop.trail == ["purchase-1", "flush-1"]


class FailingDataManager:
    """Joins the transaction and refuses to commit, as a database would on a constraint."""

    transaction_manager: Any = None

    def abort(self, txn: Any) -> None: ...
    def tpc_begin(self, txn: Any) -> None: ...
    def commit(self, txn: Any) -> None: ...
    def tpc_abort(self, txn: Any) -> None: ...
    def tpc_finish(self, txn: Any) -> None: ...

    def tpc_vote(self, txn: Any) -> None:
        raise RuntimeError("the database refused the commit")

    def sortKey(self) -> str:
        return "failing"


def test_a_commit_that_fails_is_a_failed_request():
    trail: list[str] = []

    def view(request: Request) -> Response:
        request.tm.get().join(FailingDataManager())
        runner = request.deferred_task
        runner.defer(lambda: trail.append("purchase"), max_cost_seconds=1, name="meta.purchase")
        runner.defer(lambda: trail.append("flush"), max_cost_seconds=1, name="matomo.flush", always=True)
        return Response("ok")

    config = Configurator(settings={"tm.manager_hook": "pyramid_tm.explicit_manager"})
    config.include("pyramid_tm")
    config.include("pyramid_deferred")
    config.add_route("shop", "/")
    config.add_view(view, route_name="shop")
    app = TestApp(config.make_wsgi_app())
    with pytest.raises(RuntimeError, match="refused the commit"):
        app.get("/")
    drained(app)
    assert trail == ["flush"]


def test_with_pyramid_tm_the_deferred_tween_is_outside_it(make_app):
    app, _ = make_app()
    names = [name for name, _ in app.app.registry.queryUtility(ITweens).implicit()]
    assert names.index("pyramid_deferred.tween.deferred_task_tween_factory") < names.index(
        "pyramid_tm.tm_tween_factory"
    )

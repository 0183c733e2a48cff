"""The transactional outbox, as a cookiecutter app runs it: SQLAlchemy through zope.sqlalchemy,
pyramid_tm, ``request.dbsession``, SQLite. The order and its durable tasks commit together, or
roll back together; rows are cleared once the tasks' fate is final here, kept when their spill
failed (for the sweep)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zope.sqlalchemy
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationExecutionError
from pyramid.request import Request
from pyramid.response import Response
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from webtest import TestApp

from pyramid_deferred import testing as fx
from pyramid_deferred.durable import SpillOver, durable
from pyramid_deferred.durable.sql_outbox import SqlOutbox, outbox_table
from pyramid_deferred.hook import get_hook
from pyramid_deferred.testing import TEST_CODEC, FakeSpiller, MemoryClaims

METADATA = MetaData()
ORDERS = Table("orders", METADATA, Column("id", Integer, primary_key=True), Column("email", String(200)))
OUTBOX = outbox_table(METADATA)


class Shop:
    """The cookiecutter's wiring, by hand: a session per request joined to pyramid_tm's transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.factory = sessionmaker(bind=engine)
        self.doom = False
        self.fail = False
        self.seen_rows: list[int] = []

    def dbsession(self, request: Request) -> Session:
        session = self.factory()
        zope.sqlalchemy.register(session, transaction_manager=request.tm)
        return session

    def checkout(self, request: Request) -> Response:
        order_id = int(request.params["order"])
        request.dbsession.execute(insert(ORDERS).values(id=order_id, email="buyer@example.com"))
        zope.sqlalchemy.mark_changed(request.dbsession)  # a core statement: say so (the ORM would)
        request.deferred_task.defer(durable(fx.record_durable, "sql", order_id), max_cost_seconds=0.5,
                                    name="meta.purchase")
        request.deferred_task.defer(lambda: self.seen_rows.append(self.outbox_rows()), max_cost_seconds=0.5,
                                    name="probe.outbox", priority=100)  # runs first: sees the committed row
        if self.doom:
            request.tm.doom()
        if self.fail:
            raise RuntimeError("the payment provider said no")
        return Response(f"order {order_id}")

    def outbox_rows(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(OUTBOX)).scalar_one())

    def orders(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(ORDERS)).scalar_one())


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = create_engine(f"sqlite:///{tmp_path / 'shop.sqlite'}")
    METADATA.create_all(made)
    yield made
    made.dispose()


def serve(shop: Shop, view: Callable[[Request], Response], spiller: FakeSpiller,
          **settings: str) -> tuple[TestApp, Callable[[], object]]:
    """The app with ``view`` at /checkout, its spill-over in memory and its outbox in the database."""
    config = Configurator(settings={"tm.manager_hook": "pyramid_tm.explicit_manager", **settings})
    config.include("pyramid_tm")
    config.include("pyramid_deferred")
    config.add_request_method(shop.dbsession, "dbsession", reify=True)
    config.add_route("checkout", "/checkout")
    config.add_view(view, route_name="checkout")
    app = config.make_wsgi_app()
    hook = get_hook(app.registry)
    hook.spill_over = SpillOver(  # the Celery spill-over, in memory; the outbox, real
        spiller, MemoryClaims(), codec=TEST_CODEC,
        outbox=SqlOutbox(shop.engine, session_of=lambda request: request.dbsession),
    )
    return TestApp(app), lambda: hook.worker.shutdown(grace_seconds=1)


@pytest.fixture
def shop(engine: Engine) -> Iterator[tuple[TestApp, Shop, FakeSpiller]]:
    shop, spiller = Shop(engine), FakeSpiller()
    app, stop = serve(shop, shop.checkout, spiller)
    yield app, shop, spiller
    stop()


def test_the_order_and_its_durable_task_commit_together_and_the_row_is_cleared_once_it_ran(shop):
    app, orders, _ = shop
    app.post("/checkout", {"order": "1"})
    assert orders.orders() == 1
    assert orders.seen_rows == [1]  # committed with the order, before the task ran
    assert orders.outbox_rows() == 0  # it ran here: cleared
    assert ("sql", 1) in fx.DURABLE_CALLS


@pytest.mark.parametrize("how", ["doomed", "raised"])
def test_a_rolled_back_order_leaves_no_outbox_row_and_its_task_never_runs(shop, how):
    app, orders, spiller = shop
    if how == "doomed":
        orders.doom = True
        app.post("/checkout", {"order": "2"})
    else:
        orders.fail = True
        with pytest.raises(RuntimeError):
            app.post("/checkout", {"order": "2"})
    assert (orders.orders(), orders.outbox_rows()) == (0, 0)
    assert ("sql", 2) not in fx.DURABLE_CALLS and spiller.sent == []


def test_a_task_whose_spill_failed_keeps_its_row_for_the_sweep(engine):
    orders, spiller = Shop(engine), FakeSpiller()
    spiller.down = True  # the broker refuses the spill

    def skipped(request: Request) -> Response:
        request.dbsession.execute(insert(ORDERS).values(id=3, email="buyer@example.com"))
        zope.sqlalchemy.mark_changed(request.dbsession)
        request.deferred_task.defer(durable(fx.record_durable, "sql", 3), max_cost_seconds=5,
                                    name="meta.purchase")  # more than the budget: skipped, spilled
        return Response("order 3")

    app, stop = serve(orders, skipped, spiller, **{"deferred_task.budget_seconds": "1"})
    app.post("/checkout", {"order": "3"})
    stop()

    assert (orders.orders(), orders.outbox_rows()) == (1, 1)  # the row waits for the sweep
    clock = fx.FakeClock(start=10**10)  # long after its lease
    [(key, text)] = SqlOutbox(engine, clock=clock).take_expired(10, lease_seconds=60)
    assert TEST_CODEC.open(json.loads(text)).key == key and ":meta.purchase:" in key
    assert ("sql", 3) not in fx.DURABLE_CALLS


def test_a_missing_outbox_table_fails_the_commit_and_the_order_with_it(shop, engine):
    app, orders, _ = shop
    OUTBOX.drop(engine)
    with pytest.raises(Exception, match="deferred_task_outbox"):
        app.post("/checkout", {"order": "4"})
    assert orders.orders() == 0  # never an order without its events


def test_the_directive_needs_a_broker_and_refuses_what_is_not_an_outbox(engine):
    config = Configurator()
    config.include("pyramid_deferred")
    with pytest.raises(TypeError, match="outbox must have record, clear and take_expired"):
        config.set_deferred_task_outbox(object())
    config.set_deferred_task_outbox(SqlOutbox(engine))
    with pytest.raises(ConfigurationExecutionError, match=r"needs the spill-over: set deferred_task\."):
        config.make_wsgi_app()


def test_the_sweep_takes_an_expired_row_once_even_with_two_sweeps_at_once(engine):
    clock = fx.FakeClock(start=1_000_000.0)
    outbox = SqlOutbox(engine, clock=clock)
    outbox.record([("req:t:meta.purchase:0", '{"v":1}')], lease_seconds=60)
    assert outbox.take_expired(10, lease_seconds=60) == []
    clock.advance(61)
    other = SqlOutbox(engine, clock=clock)
    first, second = outbox.take_expired(10, 60), other.take_expired(10, 60)
    assert [first, second] == [[("req:t:meta.purchase:0", '{"v":1}')], []]
    outbox.clear(["req:t:meta.purchase:0"])
    assert outbox.pending() == 0


def test_a_view_that_writes_nothing_else_still_commits_its_outbox_rows(engine):
    orders, spiller = Shop(engine), FakeSpiller()

    def only_an_event(request: Request) -> Response:
        request.dbsession  # the session exists (the cookiecutter's reified property), unused  # noqa: B018
        request.deferred_task.defer(durable(fx.record_durable, "sql", 5), max_cost_seconds=0.5,
                                    name="meta.purchase")
        request.deferred_task.defer(lambda: orders.seen_rows.append(orders.outbox_rows()),
                                    max_cost_seconds=0.5, name="probe.outbox", priority=100)
        return Response("event")

    app, stop = serve(orders, only_an_event, spiller)
    app.post("/checkout")
    stop()
    assert orders.seen_rows == [1]  # zope.sqlalchemy committed the row: the insert is an ORM statement

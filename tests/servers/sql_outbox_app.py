"""A small app on the transactional outbox, for the real-server crash test: pyramid_tm with
zope.sqlalchemy and a SQLite file (``PROBE_SQL_URL``), as a cookiecutter app runs them, with the
add-on's spill-over (its settings from the environment) and ``config.set_deferred_task_outbox``.

    waitress-serve --call tests.servers.sql_outbox_app:make_app
    celery -A tests.servers.sql_outbox_worker worker -B      # its worker, sweeping the same rows
"""

from __future__ import annotations

import os
from typing import Any

import zope.sqlalchemy
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid_deferred.durable import durable
from pyramid_deferred.durable.sql_outbox import SqlOutbox, outbox_table
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert
from sqlalchemy.orm import Session, sessionmaker

from tests.servers.probe_app import probe_dir, record_durable, sleep_durable

SQL_URL_ENV = "PROBE_SQL_URL"
METADATA = MetaData()
ORDERS = Table("orders", METADATA, Column("id", String(64), primary_key=True), Column("items", Integer))
outbox_table(METADATA)


def engine_and_outbox() -> tuple[Any, SqlOutbox]:
    engine = create_engine(os.environ[SQL_URL_ENV])
    METADATA.create_all(engine)
    return engine, SqlOutbox(engine, session_of=lambda request: request.dbsession)


def order_view(request: Request) -> Response:
    """Writes an order, defers a durable task that sleeps ``seconds`` (priority 100) and two more
    queued behind it: a SIGKILL while the first runs leaves all three to the outbox's rows."""
    rid = request.GET["rid"]
    request.dbsession.execute(insert(ORDERS).values(id=rid, items=3))
    zope.sqlalchemy.mark_changed(request.dbsession)
    runner = request.deferred_task
    runner.defer(durable(sleep_durable, rid, 0, float(request.GET.get("seconds", "20"))),
                 max_cost_seconds=1.0, priority=100, name="probe.durable.sleep")
    for index in (1, 2):
        runner.defer(durable(record_durable, rid, index), max_cost_seconds=1.0, name=f"probe.durable.{index}")
    return Response(f"order {rid}")


def make_app() -> Any:
    (probe_dir() / "markers").mkdir(parents=True, exist_ok=True)
    engine, outbox = engine_and_outbox()
    sessions = sessionmaker(bind=engine)

    def dbsession(request: Request) -> Session:
        session = sessions()
        zope.sqlalchemy.register(session, transaction_manager=request.tm)
        return session

    config = Configurator(settings={"tm.manager_hook": "pyramid_tm.explicit_manager"})
    config.include("pyramid_tm")
    config.include("pyramid_deferred")
    config.set_deferred_task_outbox(outbox)
    config.add_request_method(dbsession, "dbsession", reify=True)
    config.add_route("order", "/order")
    config.add_view(order_view, route_name="order")
    config.add_route("health", "/health")
    config.add_view(lambda request: Response("ok"), route_name="health")
    return config.make_wsgi_app()

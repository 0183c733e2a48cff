"""The transactional outbox: a request's durable tasks written as rows in the request's own
database transaction, so that the order and its revenue events commit, or roll back, together.

For apps on pyramid_tm with zope.sqlalchemy (the cookiecutter's ``request.dbsession``)::

    from pyramid_deferred.durable.sql_outbox import SqlOutbox, outbox_table

    outbox_table(Base.metadata)          # the table joins your migrations (alembic autogenerate)
    config.set_deferred_task_outbox(SqlOutbox(engine, session_of=lambda request: request.dbsession))

and in the Celery worker's module, the same outbox for the sweep::

    app = create_celery_app(settings, outbox=SqlOutbox(engine), imports=("myapp.durable",))

At the request's first ``defer()``, a before-commit hook is added to its transaction: when the
view's work commits, the durable tasks deferred by then are inserted through the request's session,
in the same commit; a rolled-back request writes none. Tasks deferred after the commit (a response
callback) are written at the response, in a transaction of their own. The rows are deleted after
the tasks' fate is final here; the sweep re-sends a row whose lease ran out (its process died).
Lease times are this machine's clock (``time.time()``): keep web and worker clocks in sync (NTP).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Column, Float, MetaData, String, Table, Text, delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import registry

from pyramid_deferred.durable.outbox import OutboxUnavailable

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

T = TypeVar("T")
TABLE_NAME = "deferred_task_outbox"
KEY_LENGTH = 512


def outbox_table(metadata: MetaData, name: str = TABLE_NAME) -> Table:
    """The outbox's table in ``metadata`` (your models' ``Base.metadata``: your migrations create it)."""
    existing = metadata.tables.get(name)
    if existing is not None:
        return existing
    return Table(
        name, metadata,
        Column("key", String(KEY_LENGTH), primary_key=True),
        Column("message", Text, nullable=False),
        Column("lease_until", Float, nullable=False, index=True),
    )


class OutboxEntry:
    """One row, mapped onto the outbox's table: written through the request's session, the insert
    is an ORM statement, which zope.sqlalchemy sees (it marks the session changed, so the row is
    committed even when the view itself wrote nothing through the ORM)."""

    key: str
    message: str
    lease_until: float


_mapped: dict[Table, type[OutboxEntry]] = {}


def entry_class(table: Table) -> type[OutboxEntry]:
    """The mapped class of ``table`` (one per table: a class maps once)."""
    mapped = _mapped.get(table)
    if mapped is None:
        mapped = _mapped[table] = type("OutboxEntry", (OutboxEntry,), {})
        registry().map_imperatively(mapped, table)
    return mapped


class SqlOutbox:
    """The outbox in the app's database (SQLAlchemy 2; any database it supports, SQLite included)."""

    name = "SQL"

    def __init__(
        self,
        engine: Engine,
        *,
        session_of: Callable[[Any], Session] | None = None,
        table: Table | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``session_of(request)``: the request's session, joined to its pyramid_tm transaction by
        zope.sqlalchemy (web side only; None: rows are written in transactions of their own)."""
        self.engine = engine
        self.session_of = session_of
        self.table = table if table is not None else outbox_table(MetaData())
        self.entry = entry_class(self.table)
        self.clock = clock

    def create_table(self) -> None:
        """Create the table if it is missing (tests, scripts; apps use their migrations)."""
        self._call(lambda: self.table.create(self.engine, checkfirst=True))

    def _rows(self, entries: Sequence[tuple[str, str]], lease_seconds: float) -> list[dict[str, object]]:
        until = self.clock() + lease_seconds
        return [{"key": key, "message": message, "lease_until": until} for key, message in entries]

    def record_in(self, session: Session, entries: Sequence[tuple[str, str]], lease_seconds: float) -> None:
        """Insert the entries through the request's session: they commit with its transaction. An
        error propagates, and the commit fails with it: the order never commits without its events."""
        if entries:
            session.execute(insert(self.entry), self._rows(entries, lease_seconds))

    def record(self, entries: Sequence[tuple[str, str]], lease_seconds: float) -> None:
        if not entries:
            return

        def write() -> None:
            with self.engine.begin() as connection:
                connection.execute(insert(self.table), self._rows(entries, lease_seconds))

        self._call(write)

    def clear(self, keys: Sequence[str]) -> None:
        if not keys:
            return

        def remove() -> None:
            with self.engine.begin() as connection:
                connection.execute(delete(self.table).where(self.table.c.key.in_(list(keys))))

        self._call(remove)

    def take_expired(self, limit: int, lease_seconds: float) -> list[tuple[str, str]]:
        """Each expired row is taken by an update that only succeeds if its lease is still the one
        read: of two sweeps at once, one gets it (any database, no row locks needed)."""
        table = self.table

        def take() -> list[tuple[str, str]]:
            now = self.clock()
            taken: list[tuple[str, str]] = []
            with self.engine.begin() as connection:
                rows = connection.execute(
                    select(table.c.key, table.c.message, table.c.lease_until)
                    .where(table.c.lease_until <= now).order_by(table.c.lease_until).limit(limit)
                ).all()
                for key, message, until in rows:
                    moved = connection.execute(
                        update(table).where(table.c.key == key, table.c.lease_until == until)
                        .values(lease_until=now + lease_seconds)
                    )
                    if moved.rowcount == 1:
                        taken.append((key, message))
            return taken

        return self._call(take)

    def pending(self) -> int:
        def count() -> int:
            with self.engine.connect() as connection:
                return int(connection.execute(select(func.count()).select_from(self.table)).scalar_one())

        return self._call(count)

    @staticmethod
    def _call(operation: Callable[[], T]) -> T:
        try:
            return operation()
        except SQLAlchemyError as error:
            raise OutboxUnavailable(type(error).__name__) from None

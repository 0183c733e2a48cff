"""Transactions and retries, as Pyramid apps run them (pyramid_tm, pyramid_retry).

- An attempt that pyramid_retry retries never reaches the client: its tasks, ``always`` ones
  included, are discarded and logged once (``pyramid_retry.is_error_retryable`` is exactly what
  its execution policy asks before it retries).
- A pyramid_tm transaction that is doomed, vetoed or aborted makes the request a failed one,
  whatever the status: a purchase event must not be sent for an order that was rolled back.
  At the request's first ``defer()``, an after-commit hook on its transaction records whether
  the commit succeeded; requests that defer nothing pay nothing.
- With the transactional outbox (``pyramid_deferred.durable.sql_outbox``), a before-commit hook
  writes the durable tasks deferred so far as rows in that same transaction.

Neither package is a dependency: each is consulted only where the request shows it is active.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pyramid.request import Request

if TYPE_CHECKING:
    from pyramid_deferred.batch import RequestBatch

TM_TWEEN = "pyramid_tm.tm_tween_factory"
RETRIED = "this attempt is retried by pyramid_retry; its response never reaches the client"


def is_retried_attempt(request: Request, error: BaseException | None) -> bool:
    """Will pyramid_retry run this request again, because of ``error``?"""
    if error is None or "retry.attempt" not in request.environ:
        return False
    try:
        from pyramid_retry import is_error_retryable
    except ImportError:  # pragma: no cover - the environ key is pyramid_retry's own
        return False
    return bool(is_error_retryable(request, error))


def watch_transaction(request: Request, batch: RequestBatch) -> None:
    """Under pyramid_tm, record whether the request's transaction commits (called at the
    request's first ``defer()``, inside the transaction)."""
    manager = request.environ.get("tm.manager")
    if manager is None:
        return
    try:
        transaction = manager.get()
    except Exception:  # no transaction open (the app ended it itself): nothing to watch
        return
    batch.transaction_committed = False
    transaction.addAfterCommitHook(_record_commit, args=(batch,))
    outbox = batch.spill_over.outbox if batch.spill_over is not None else None
    session_of = getattr(outbox, "session_of", None)
    if session_of is not None:  # the transactional outbox: rows in this very commit
        transaction.addBeforeCommitHook(_record_durable_tasks, args=(batch, session_of, request))


def _record_durable_tasks(
    batch: RequestBatch, session_of: Callable[[Request], object], request: Request
) -> None:
    """Before the commit: the durable tasks the view deferred become outbox rows in its transaction."""
    run = batch.open_durable_run()
    if run is not None:
        run.record(batch.runner.queued(), session=session_of(request))


def _record_commit(status: bool, batch: RequestBatch) -> None:
    batch.transaction_committed = bool(status)

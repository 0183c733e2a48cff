"""Transactions and retries, as Pyramid apps run them (pyramid_tm, pyramid_retry).

- An attempt that pyramid_retry retries never reaches the client: its tasks, ``always`` ones
  included, are discarded and logged once (``pyramid_retry.is_error_retryable`` is exactly what
  its execution policy asks before it retries).
- A pyramid_tm transaction that is doomed, vetoed or aborted makes the request a failed one,
  whatever the status: a purchase event must not be sent for an order that was rolled back.
  A tween just inside pyramid_tm's records, with an after-commit hook, whether the commit
  succeeded. Without pyramid_tm in the app, that tween is no tween (the handler itself).

Neither package is a dependency: each is consulted only where the request shows it is active.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pyramid.interfaces import ITweens
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response

from pyramid_deferred.batch import BATCH_ATTR

if TYPE_CHECKING:
    from pyramid_deferred.batch import RequestBatch

TM_TWEEN = "pyramid_tm.tm_tween_factory"
TM_OUTCOME_TWEEN = "pyramid_deferred.transactions.tm_outcome_tween_factory"
RETRIED = "this attempt is retried by pyramid_retry; its response never reaches the client"

Handler = Callable[[Request], Response]


def is_retried_attempt(request: Request, error: BaseException | None) -> bool:
    """Will pyramid_retry run this request again, because of ``error``?"""
    if error is None or "retry.attempt" not in request.environ:
        return False
    try:
        from pyramid_retry import is_error_retryable
    except ImportError:  # pragma: no cover - the environ key is pyramid_retry's own
        return False
    return bool(is_error_retryable(request, error))


def _tween_names(registry: Registry) -> list[str]:
    tweens = registry.queryUtility(ITweens)
    if tweens is None:
        return []
    return [name for name, _ in (tweens.explicit or tweens.implicit())]


def tm_outcome_tween_factory(handler: Handler, registry: Registry) -> Handler:
    if TM_TWEEN not in _tween_names(registry):
        return handler

    def tm_outcome_tween(request: Request) -> Response:
        manager = request.environ.get("tm.manager")
        batch: RequestBatch | None = getattr(request, BATCH_ATTR, None)
        if manager is not None and batch is not None:
            batch.transaction_committed = False
            manager.get().addAfterCommitHook(_record_commit, args=(batch,))
        return handler(request)

    return tm_outcome_tween


def _record_commit(status: bool, batch: RequestBatch) -> None:
    batch.transaction_committed = bool(status)

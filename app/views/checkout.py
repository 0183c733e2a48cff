"""A demo checkout that uses every defer() option, without any external service.

- ``meta.purchase`` (critical): must not be sent for a declined payment; the hook discards it
  because the response is a 402 (Laravel's rule), so the view needs no ``if``;
- ``audit.checkout`` (``always=True``): runs whatever the outcome;
- ``matomo.flush`` (``unique=True``): deferred at each step, only the last one runs;
- ``advisable.cart_abandoned``: deferred when the checkout starts, forgotten once the order is
  placed, because a cart that became an order was not abandoned.

``?declined=1`` simulates a refused payment.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from loguru import logger
from pyramid.request import Request
from pyramid.view import view_config

from app.deferred_task import DeferredTaskRunner

PAYMENT_REQUIRED = 402


def demo_task(name: str, detail: str) -> Callable[[], None]:
    """Stands in for a call to an analytics or CRM service: it logs what it would send."""
    return lambda: logger.bind(channel="app").info("{} sent: {}", name, detail)


@view_config(route_name="checkout", request_method=("GET", "POST"), renderer="json")
def checkout(request: Request) -> dict[str, str | None]:
    runner: DeferredTaskRunner = request.deferred_task
    order_id = uuid.uuid4().hex[:12]
    runner.defer(
        demo_task("advisable.cart_abandoned", "cart left at checkout"),
        max_cost_seconds=0.5, priority=DeferredTaskRunner.PRIORITY_LOW, name="advisable.cart_abandoned",
    )
    runner.defer(
        demo_task("audit.checkout", f"checkout attempt {order_id}"),
        max_cost_seconds=0.1, name="audit.checkout", always=True,
    )
    for step in ("cart", "payment"):
        runner.defer(
            demo_task("matomo.flush", f"page views up to the {step} step"),
            max_cost_seconds=0.5, priority=DeferredTaskRunner.PRIORITY_LOW, name="matomo.flush", unique=True,
        )
    runner.defer(
        demo_task("meta.purchase", f"Purchase event for order {order_id}"),
        max_cost_seconds=0.5, priority=DeferredTaskRunner.PRIORITY_CRITICAL, name="meta.purchase",
    )
    if request.params.get("declined") == "1":
        request.response.status_int = PAYMENT_REQUIRED
        return {"order": None, "status": "declined"}
    runner.forget("advisable.cart_abandoned")
    return {"order": order_id, "status": "placed"}

"""The shop's revenue events as durable tasks: functions declared with ``@durable_function``,
with JSON arguments, so a purchase that cannot be sent after the response (budget, failure,
service down, shutdown) spills to Celery and a worker (app/worker.py, which imports this module:
the worker runs declared functions only) sends it, instead of a lost sale (docs/durable.md).

Each function finds the services in the process's container: during a request, the app's own
(``start_request_scope`` sets it, and the deferred run sees the request's context); in a Celery
worker, the one app/worker.py builds. A delivery that fails (timeout, 5xx) raises, so the runner
spills it or Celery retries it; an open circuit raises :class:`ServiceDown` with the breaker's
reset timeout (both only where a spill-over takes them: ``spill_possible()``); a rejection (our
payload's fault) does not raise: retrying cannot fix it, and the service already logged it.
What they raise names the service, never the buyer: the worker logs it, and keeps it with a
dead letter.

The remote side makes duplicates harmless where the API allows it: Meta drops a second event
with the same ``event_id`` (the order id), SALESmanago a second event with the same
``externalId`` (the order id). Advisable AI's signals have no idempotency key.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pyramid_deferred.durable import ServiceDown, durable_function, spill_possible

from app.services import (
    ManagoPurchase,
    MetaContent,
    MetaCustomData,
    MetaEvent,
    MetaEventName,
    MetaUserData,
    Signal,
    SignalType,
)
from app.services.delivery import Outcome

if TYPE_CHECKING:
    from containers import Container

CURRENT_CONTAINER: ContextVar[Container] = ContextVar("durable_tasks_container")
_process_container: list[Container] = []


class DeliveryFailed(RuntimeError):
    """The service could not be reached or answered with an error worth retrying."""


def use_process_container(container: Container) -> None:
    """The container durable tasks use outside a request (a Celery worker)."""
    _process_container[:] = [container]


def current_container() -> Container:
    container = CURRENT_CONTAINER.get(None)
    if container is not None:
        return container
    if _process_container:
        return _process_container[0]
    raise RuntimeError("no container for durable tasks: run them in a request or in app/worker.py's worker")


def deliver(service: str, outcome: Outcome) -> None:
    """Raise for the outcomes worth another attempt elsewhere, when there is an elsewhere: with
    spill-over off (no broker) the service's WARNING line is all there is, as for any task."""
    if not spill_possible():
        return
    if outcome is Outcome.FAILED:
        raise DeliveryFailed(f"{service}: delivery failed (see the INTEGRATIONS log line)")
    if outcome is Outcome.SKIPPED:
        retry_after = current_container().breaker_store().retry_after(service)
        raise ServiceDown(service, retry_after if retry_after is not None else 0.0)


# --- Meta Conversions API: meta.purchase ---


def meta_event_to_json(event: MetaEvent) -> dict[str, Any]:
    user, custom = event.user_data, event.custom_data
    return {
        "event_name": event.event_name.value,
        "event_source_url": event.event_source_url,
        "event_id": event.event_id,
        "event_time": event.event_time,
        "user_data": {
            "client_ip_address": user.client_ip_address, "client_user_agent": user.client_user_agent,
            "email": user.email, "phone": user.phone, "external_id": user.external_id,
            "fbp": user.fbp, "fbc": user.fbc,
        },
        "custom_data": {
            "value": custom.value, "currency": custom.currency, "order_id": custom.order_id,
            "search_string": custom.search_string, "num_items": custom.num_items,
            "contents": [
                {"id": c.id, "quantity": c.quantity, "item_price": c.item_price} for c in custom.contents
            ],
        },
    }


def meta_event_from_json(data: dict[str, Any]) -> MetaEvent:
    custom = dict(data["custom_data"])
    contents = tuple(MetaContent(**content) for content in custom.pop("contents"))
    return MetaEvent(
        MetaEventName(data["event_name"]),
        event_source_url=data["event_source_url"],
        user_data=MetaUserData(**data["user_data"]),
        custom_data=MetaCustomData(contents=contents, **custom),
        event_id=data["event_id"],
        event_time=data["event_time"],
    )


@durable_function
def meta_event(event: dict[str, Any]) -> None:
    """Durable: send one Conversions API event (``meta.purchase``)."""
    deliver("meta", current_container().meta().send_event(meta_event_from_json(event)))


# --- SALESmanago: manago.purchase ---


def manago_purchase_to_json(purchase: ManagoPurchase) -> dict[str, Any]:
    return {
        "email": purchase.email, "order_id": purchase.order_id, "product_ids": list(purchase.product_ids),
        "value": purchase.value, "currency": purchase.currency, "location": purchase.location,
        "date": purchase.date.isoformat(),
    }


@durable_function
def manago_purchase(purchase: dict[str, Any]) -> None:
    """Durable: the buyer's contact upsert and the purchase event (``manago.purchase``)."""
    data = {**purchase, "product_ids": tuple(purchase["product_ids"]),
            "date": datetime.fromisoformat(purchase["date"])}
    deliver("manago", current_container().manago().send_purchase(ManagoPurchase(**data)))


# --- Advisable AI: advisable_ai.purchase ---


def signal_to_json(signal: Signal) -> dict[str, Any]:
    return {
        "type": signal.type.value, "item_id": signal.item_id, "user_id": signal.user_id,
        "session_id": signal.session_id, "value": signal.value, "timestamp": signal.timestamp.isoformat(),
    }


@durable_function
def advisable_ai_signal(signal: dict[str, Any]) -> None:
    """Durable: one signal (``advisable_ai.purchase``)."""
    data = {**signal, "type": SignalType(signal["type"]),
            "timestamp": datetime.fromisoformat(signal["timestamp"])}
    deliver("advisable_ai", current_container().advisable_ai().send_signal(Signal(**data)))

"""Durable tasks spill over to a distributed engine instead of being lost (framework-free).

    from pyramid_deferred.durable import durable, durable_function

    @durable_function
    def send_purchase(order_id: str) -> None: ...

    request.deferred_task.defer(
        durable(send_purchase, order.id, service="meta"),
        max_cost_seconds=2.0, priority=PRIORITY_CRITICAL, name="meta.purchase",
    )

The fast path is unchanged: the task runs in this process after the response. It is *spilled*
(handed to the engine, ``pyramid_deferred.celery``, as a signed message whose arguments are
encrypted when a key is set) when the budget or the hard limit skips it, when it raises, when
its service is known to be down, or when the process stops with it still queued. The engine's
worker runs only functions declared with ``@durable_function``, and only signed messages. Each
spilled task carries an idempotency key; the engine's worker claims the key before it runs the
task, and so does the in-process run: a key that already ran is not run again.
See docs/durable.md for the guarantees, reason by reason.
"""

from __future__ import annotations

from pyramid_deferred.core.durable import (
    MAX_MESSAGE_BYTES,
    DurableCall,
    DurableHooks,
    NotDurableError,
    ServiceDown,
    decode_payload,
    durable,
    durable_function,
    durable_function_paths,
    registered_function,
    spill_possible,
)
from pyramid_deferred.durable.message import (
    ForgedMessage,
    MessageCodec,
    SealedMessage,
    SpilledTask,
    UndecryptablePayload,
)
from pyramid_deferred.durable.spill import (
    BrokerUnavailable,
    Claim,
    Claims,
    DurableRun,
    ServiceCheck,
    Spiller,
    SpillListener,
    SpillOver,
    SpillReason,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "BrokerUnavailable",
    "Claim",
    "Claims",
    "DurableCall",
    "DurableHooks",
    "DurableRun",
    "ForgedMessage",
    "MessageCodec",
    "NotDurableError",
    "SealedMessage",
    "ServiceCheck",
    "ServiceDown",
    "SpillListener",
    "SpillOver",
    "SpillReason",
    "SpilledTask",
    "Spiller",
    "UndecryptablePayload",
    "decode_payload",
    "durable",
    "durable_function",
    "durable_function_paths",
    "registered_function",
    "spill_possible",
]

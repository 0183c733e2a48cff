"""The other process in the shared-breaker tests: sends signals through a Redis-backed breaker.

Usage: python -m tests.integration.services.breaker_worker REDIS_URL SIGNALS_URL COUNT
Prints one JSON line: the outcome of each send.
"""

from __future__ import annotations

import json
import sys

from loguru import logger

from app.services.advisable_ai import AdvisableAIService, AdvisableAISettings, Signal, SignalType
from app.services.breaker_store import BreakerStore
from app.services.http_client import create_http_client
from tests.integration.services.credentials import advisable_ai_env


def main(redis_url: str, base_url: str, count: int) -> None:
    logger.remove()
    store = BreakerStore.from_environ({"CIRCUIT_BREAKER_REDIS_URL": redis_url})
    settings = AdvisableAISettings.from_environ(
        advisable_ai_env(base_url, ADVISABLE_AI_BREAKER_RESET_TIMEOUT="60")
    )
    with create_http_client() as http:
        service = AdvisableAIService(
            settings, http, store.breaker("advisable_ai", settings.breaker)
        )
        signal = Signal(SignalType.VIEW, item_id="p-1", session_id="s-1")
        outcomes = [service.send_signal(signal).value for _ in range(count)]
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

"""Integrations run as deferred tasks: Meta Conversions API, Advisable AI, Manago CRM, Matomo.

Framework-free: nothing here imports Pyramid, the container or the runner. Each service
takes its settings, the process's shared ``httpx.Client`` and its ``ServiceBreaker``.
"""

from app.services.advisable_ai import AdvisableAIService, AdvisableAISettings, Signal, SignalType
from app.services.breaker import BreakerSettings, ServiceBreaker
from app.services.breaker_store import BreakerStore, BreakerStoreSettings
from app.services.delivery import Outcome
from app.services.http_client import HttpTimeouts, create_http_client
from app.services.manago import ManagoPurchase, ManagoService, ManagoSettings
from app.services.matomo import (
    MatomoItem,
    MatomoService,
    MatomoSettings,
    MatomoTracker,
    MatomoVisit,
)
from app.services.meta import (
    MetaContent,
    MetaConversionsService,
    MetaCustomData,
    MetaEvent,
    MetaEventName,
    MetaSettings,
    MetaUserData,
)

__all__ = [
    "AdvisableAIService",
    "AdvisableAISettings",
    "BreakerSettings",
    "BreakerStore",
    "BreakerStoreSettings",
    "HttpTimeouts",
    "ManagoPurchase",
    "ManagoService",
    "ManagoSettings",
    "MatomoItem",
    "MatomoService",
    "MatomoSettings",
    "MatomoTracker",
    "MatomoVisit",
    "MetaContent",
    "MetaConversionsService",
    "MetaCustomData",
    "MetaEvent",
    "MetaEventName",
    "MetaSettings",
    "MetaUserData",
    "Outcome",
    "ServiceBreaker",
    "Signal",
    "SignalType",
    "create_http_client",
]

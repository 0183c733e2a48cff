"""Fake but distinctive credentials: any of them found in a log line is a leak."""

from __future__ import annotations

import hashlib

META_PIXEL_ID = "1234567890"
META_ACCESS_TOKEN = "EAAmetaTOKEN5f1c9a77"
ADVISABLE_AI_API_KEY = "aikey83be02d4"
MANAGO_CLIENT_ID = "client7x1"
MANAGO_API_KEY = "managoKEY1d7e44"
MANAGO_API_SECRET = "managoSECRET9a0c31"
MANAGO_OWNER = "owner@shop.example"
MANAGO_SHA = hashlib.sha1(
    (MANAGO_API_KEY + MANAGO_CLIENT_ID + MANAGO_API_SECRET).encode(), usedforsecurity=False
).hexdigest()
MATOMO_TOKEN_AUTH = "matomoTOKENc2d8e7f0"
REDIS_PASSWORD = "redisPASS77aa10"

SECRET_VALUES = (
    META_ACCESS_TOKEN,
    ADVISABLE_AI_API_KEY,
    MANAGO_API_KEY,
    MANAGO_API_SECRET,
    MANAGO_SHA,
    MATOMO_TOKEN_AUTH,
    REDIS_PASSWORD,
)

DURABLE_SIGNING_KEY = "durable-test-signing-key-Qm7T2vXc9LpR4sWz8YbN"
DURABLE_ENCRYPTION_KEY = "aEZSHw4MrtJATcLi3xvjVO1xwIQgKbAV6NhG7lb-yG4="
DURABLE_KEYS = (DURABLE_SIGNING_KEY, DURABLE_ENCRYPTION_KEY)
"""The durable tasks' keys of the real-server tests (web processes and workers): they never travel,
and must never be logged."""

FAST = {"CONNECT_TIMEOUT": "0.2", "READ_TIMEOUT": "0.2", "BREAKER_FAIL_MAX": "3"}


def _with_prefix(prefix: str, values: dict[str, str]) -> dict[str, str]:
    return {f"{prefix}_{key}": value for key, value in values.items()}


def meta_env(base_url: str, **extra: str) -> dict[str, str]:
    return {
        "META_PIXEL_ID": META_PIXEL_ID,
        "META_ACCESS_TOKEN": META_ACCESS_TOKEN,
        "META_GRAPH_URL": base_url,
        **_with_prefix("META", FAST),
        **extra,
    }


def advisable_ai_env(base_url: str, **extra: str) -> dict[str, str]:
    return {
        "ADVISABLE_AI_SIGNALS_URL": f"{base_url.rstrip('/')}/v1/signals",
        "ADVISABLE_AI_API_KEY": ADVISABLE_AI_API_KEY,
        **_with_prefix("ADVISABLE_AI", FAST),
        **extra,
    }


def manago_env(base_url: str, **extra: str) -> dict[str, str]:
    return {
        "MANAGO_URL": base_url,
        "MANAGO_CLIENT_ID": MANAGO_CLIENT_ID,
        "MANAGO_API_KEY": MANAGO_API_KEY,
        "MANAGO_API_SECRET": MANAGO_API_SECRET,
        "MANAGO_OWNER": MANAGO_OWNER,
        **_with_prefix("MANAGO", FAST),
        **extra,
    }


def matomo_env(base_url: str, **extra: str) -> dict[str, str]:
    return {
        "MATOMO_URL": base_url,
        "MATOMO_TOKEN_AUTH": MATOMO_TOKEN_AUTH,
        "MATOMO_SITE_ID": "7",
        **_with_prefix("MATOMO", FAST),
        **extra,
    }

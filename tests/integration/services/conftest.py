"""Real parts only: a threaded pytest-httpserver on 127.0.0.1, the real shared httpx client,
real breakers, and every log line checked for leaked secrets after each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pytest_httpserver import HTTPServer

from app.services.breaker_store import BreakerStore
from app.services.http_client import create_http_client
from tests.integration.services.credentials import SECRET_VALUES
from tests.integration.services.log_capture import LogCapture, capture_logs


@pytest.fixture(scope="session")
def make_httpserver() -> Iterator[HTTPServer]:
    """Threaded, so a stub that sleeps does not hold up the next test's requests."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def http_client() -> Iterator[httpx.Client]:
    client = create_http_client()
    yield client
    client.close()


@pytest.fixture
def store() -> BreakerStore:
    return BreakerStore()


@pytest.fixture(autouse=True)
def logs() -> Iterator[LogCapture]:
    """All log output of the test; afterwards no secret value may appear anywhere in it."""
    with capture_logs() as capture:
        yield capture
    leaked = [secret for secret in SECRET_VALUES if secret in capture.text]
    assert not leaked, f"secret values leaked into the logs: {leaked}"

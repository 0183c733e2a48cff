from __future__ import annotations

import pytest

from app.services.http_client import HttpTimeouts, create_http_client


def test_the_deadline_is_connect_plus_read() -> None:
    timeouts = HttpTimeouts(connect=0.5, read=2.0)

    assert timeouts.deadline == 2.5
    httpx_timeout = timeouts.for_httpx()
    assert (httpx_timeout.connect, httpx_timeout.read) == (0.5, 2.0)


@pytest.mark.parametrize(("connect", "read"), [(0.0, 1.0), (1.0, 31.0)])
def test_timeouts_out_of_range_are_refused(connect: float, read: float) -> None:
    with pytest.raises(ValueError):
        HttpTimeouts(connect=connect, read=read)


def test_timeouts_come_from_prefixed_environment_variables() -> None:
    default = HttpTimeouts(connect=1.0, read=2.0)
    environ = {"X_CONNECT_TIMEOUT": "0.3", "X_READ_TIMEOUT": "0.7"}

    assert HttpTimeouts.from_environ(environ, "X", default) == HttpTimeouts(0.3, 0.7)
    assert HttpTimeouts.from_environ({}, "X", default) == default


def test_the_shared_client_follows_no_redirects_and_ignores_proxy_settings() -> None:
    with create_http_client() as client:
        assert client.follow_redirects is False
        assert client.trust_env is False

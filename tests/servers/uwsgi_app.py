"""``uwsgi --module tests.servers.uwsgi_app``: uWSGI wants a module-level ``application``."""

from __future__ import annotations

from tests.servers.probe_app import make_app

application = make_app()

"""``python -m tests.servers.wsgiref_server PORT``: the probe app on the standard library's server.

``wsgiref.simple_server`` answers HTTP/1.0 and ends a body without Content-Length by closing
the connection after ``close()``; a threading mix-in lets it serve requests concurrently, as a
development server would.
"""

from __future__ import annotations

import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tests.servers.probe_app import make_app


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main(port: int) -> None:
    app = make_app()
    with make_server(
        "127.0.0.1", port, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler
    ) as server:
        print(f"wsgiref serving on 127.0.0.1:{port}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]))

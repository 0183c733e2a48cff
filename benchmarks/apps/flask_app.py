"""Flask peer: the same work handed to Werkzeug's ``response.call_on_close``."""

from __future__ import annotations

from flask import Flask, Response, request

from benchmarks.apps.work import BODY, CONTENT_TYPE, Work


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/bench/none")
    def none() -> Response:
        return Response(BODY, content_type=CONTENT_TYPE)

    @app.get("/bench/defer")
    def defer() -> Response:
        work = Work.from_params(request.args)
        response = Response(BODY, content_type=CONTENT_TYPE)
        response.call_on_close(work.run_all)
        return response

    return app

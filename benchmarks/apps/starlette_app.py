"""Starlette peer: the same work as ``BackgroundTasks`` (sync callables, run in the threadpool)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from benchmarks.apps.work import BODY, CONTENT_TYPE, Work


async def none(request: Request) -> Response:
    return Response(BODY, media_type=CONTENT_TYPE)


async def defer(request: Request) -> Response:
    work = Work.from_params(request.query_params)
    background = BackgroundTasks()
    for task in work.tasks():
        background.add_task(task)
    return Response(BODY, media_type=CONTENT_TYPE, background=background)


def create_app() -> Starlette:
    """uvicorn's factory (``uvicorn --factory benchmarks.apps.starlette_app:create_app``)."""
    return Starlette(routes=[Route("/bench/none", none), Route("/bench/defer", defer)])

"""Which trigger runs a request's batch, per strategy, server and response."""

from __future__ import annotations

from typing import Any

import pytest
from webob import Response

from pyramid_deferred import uwsgi as uwsgi_trigger
from pyramid_deferred.batch import RequestBatch
from pyramid_deferred.core import DeferredTaskRunner
from pyramid_deferred.core.handoff import HandOffWorker
from pyramid_deferred.dispatch import CLOSE, THREAD, UWSGI, BatchDispatcher

GUNICORN = {"SERVER_SOFTWARE": "gunicorn/27.0.1", "SERVER_PROTOCOL": "HTTP/1.1"}
GUNICORN_HTTP10 = {**GUNICORN, "SERVER_PROTOCOL": "HTTP/1.0"}
WAITRESS = {"SERVER_SOFTWARE": "waitress", "SERVER_PROTOCOL": "HTTP/1.1"}


def sized() -> Response:
    return Response(body=b"body")


def streamed() -> Response:
    return Response(app_iter=iter([b"body"]))


def empty() -> Response:
    return Response(body=b"")


def not_modified() -> Response:
    return Response(body=b"body", status=304)


def no_content() -> Response:
    return Response(status=204)


class FakeWorker:
    def __init__(self, accepts: bool = True) -> None:
        self.accepts = accepts
        self.submitted: list[Any] = []
        self.accepting = True
        self.queue_length = 1

    def submit(self, batch: Any) -> bool:
        if self.accepts:
            self.submitted.append(batch)
        return self.accepts


def dispatcher(strategy: str = "auto", worker: Any = None) -> BatchDispatcher:
    return BatchDispatcher(strategy=strategy, worker=worker or HandOffWorker())


@pytest.mark.parametrize(
    "environ, response, expected",
    [
        (GUNICORN, sized, CLOSE),
        (GUNICORN, streamed, CLOSE),  # gunicorn writes the last chunk before close()
        (GUNICORN_HTTP10, sized, CLOSE),
        (GUNICORN_HTTP10, streamed, THREAD),  # framed by the connection close, after close()
        (WAITRESS, sized, CLOSE),
        (WAITRESS, streamed, THREAD),  # the chunked terminator comes after close()
        (WAITRESS, empty, THREAD),  # waitress sends the headers of an empty body after close()
        (WAITRESS, not_modified, THREAD),
        (WAITRESS, no_content, THREAD),
    ],
)
def test_auto_picks_the_trigger_after_which_the_client_has_the_response(environ, response, expected):
    assert dispatcher().trigger_for(environ, response()) == expected


def test_a_head_request_s_batch_is_handed_off_on_waitress_and_runs_inline_on_gunicorn():
    assert dispatcher().trigger_for(WAITRESS, sized(), method="HEAD") == THREAD
    assert dispatcher().trigger_for(GUNICORN, sized(), method="HEAD") == CLOSE


def test_a_conditional_response_webob_may_turn_into_a_304_is_handed_off_on_waitress():
    response = Response(body=b"body", conditional_response=True, etag="v1")
    assert dispatcher().trigger_for({**WAITRESS, "HTTP_IF_NONE_MATCH": '"v1"'}, response) == THREAD
    assert dispatcher().trigger_for(WAITRESS, response) == CLOSE  # without a condition: a 200


def test_the_server_s_kind_is_read_once_per_process():
    deciding = dispatcher()
    assert deciding.trigger_for(GUNICORN_HTTP10, streamed()) == THREAD
    assert deciding.trigger_for({"SERVER_PROTOCOL": "HTTP/1.0"}, streamed()) == THREAD  # still gunicorn


def test_auto_hands_off_a_body_webob_closes_before_sending():
    assert dispatcher().trigger_for(GUNICORN, sized(), closed_early=True) == THREAD


def test_auto_uses_uwsgis_after_request_hook_under_uwsgi(monkeypatch):
    monkeypatch.setattr(uwsgi_trigger, "uwsgi", object())
    assert dispatcher().trigger_for(WAITRESS, streamed()) == UWSGI
    assert dispatcher("thread").trigger_for(WAITRESS, streamed()) == THREAD


@pytest.mark.parametrize("environ", [GUNICORN_HTTP10, WAITRESS])
def test_explicit_strategies_always_win(environ):
    assert dispatcher("close").trigger_for(environ, streamed(), closed_early=True) == CLOSE
    assert dispatcher("thread").trigger_for(environ, sized()) == THREAD


def test_an_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="auto, close, thread"):
        dispatcher("later")


def batch_with(trail: list[str]) -> RequestBatch:
    runner = DeferredTaskRunner()
    runner.defer(lambda: trail.append("ran"), max_cost_seconds=1, name="a.task")
    return RequestBatch(runner)


@pytest.mark.parametrize(("method", "expected"), [("GET", CLOSE), ("HEAD", THREAD)])
def test_a_sized_body_runs_inline_in_close_unless_no_body_goes_out_before_it(method, expected):
    trail: list[str] = []
    worker = FakeWorker()
    batch, response = batch_with(trail), sized()
    dispatcher(worker=worker).schedule(batch, WAITRESS, response, method=method)
    assert trail == []  # nothing before the server closes the body
    response.app_iter.close()
    assert batch.trigger == expected
    assert trail == (["ran"] if expected == CLOSE else []) and len(worker.submitted) == (expected == THREAD)


def test_a_full_queue_runs_the_batch_inline_with_a_warning(logs):
    trail: list[str] = []
    batch, response = batch_with(trail), streamed()
    dispatcher(worker=FakeWorker(accepts=False)).schedule(batch, WAITRESS, response)
    response.app_iter.close()
    assert trail == ["ran"] and batch.trigger == "inline (hand-off queue full)"
    assert any("Hand-off queue full" in message for message in logs.at("WARNING"))


def test_without_a_response_the_batch_is_handed_off():
    trail: list[str] = []
    worker = FakeWorker()
    batch = batch_with(trail)
    assert dispatcher(worker=worker).schedule_without_response(batch) == THREAD
    assert worker.submitted == [batch] and batch.scheduled and trail == []

"""The closing iterable: the server gets the original body untouched; close() closes it, then
calls on_close once; WebOb still sends the wrapped body with its Content-Length."""

from __future__ import annotations

from webob import Request, Response

from pyramid_deferred.closing import ClosingIterable, wrap_app_iter


class Body:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = 0

    def __iter__(self):
        return iter(self.chunks)

    def close(self) -> None:
        self.closed += 1


def closing(chunks: list[bytes]) -> tuple[ClosingIterable[str], Body, list[str]]:
    body, calls = Body(chunks), []
    return ClosingIterable(body, calls.append, "batch"), body, calls


def test_close_closes_the_body_then_calls_on_close_once():
    wrapped, body, calls = closing([b"a", b"b"])
    assert b"".join(wrapped) == b"ab"
    wrapped.close()
    wrapped.close()
    assert body.closed == 1 and calls == ["batch"]


def test_a_body_the_server_never_iterated_still_reaches_on_close():
    wrapped, _, calls = closing([b"a"])
    wrapped.close()  # WebOb's EmptyResponse for HEAD and 304 only forwards close()
    assert calls == ["batch"]


def test_a_range_response_closes_the_original_body_and_runs_on_close():
    wrapped, body, calls = closing([b"0123", b"4567"])
    ranged = wrapped.app_iter_range(2, 6)
    assert b"".join(ranged) == b"2345"
    ranged.close()
    ranged.close()
    assert body.closed == 1 and calls == ["batch"]


def test_webob_206_responses_reach_close():
    calls: list[str] = []
    response = Response(body=b"0123456789", conditional_response=True)
    wrap_app_iter(response, calls.append, "batch")
    request = Request.blank("/", headers={"Range": "bytes=0-3"})
    status, _, body = request.call_application(response)
    assert status.startswith("206") and b"".join(body) == b"0123"
    body.close()  # what the server does; before the fix WebOb's AppIterRange had no close()
    assert calls == ["batch"]


def test_the_wrapped_body_goes_out_whole_with_its_content_length():
    """The body is swapped on WebOb's ``_app_iter``: WebOb's own property and ``__call__`` must
    read it, and its Content-Length must stay (without it, the body goes out chunked and the
    client waits for the tasks)."""
    calls: list[str] = []
    response = Response(body=b"0123456789")
    wrap_app_iter(response, calls.append, "batch")
    assert response.content_length == 10 and isinstance(response.app_iter, ClosingIterable)
    _, headers, body = Request.blank("/").call_application(response)
    assert ("Content-Length", "10") in headers and b"".join(body) == b"0123456789"
    body.close()
    assert calls == ["batch"]


class OrderedBody(Body):
    """A body whose close() is recorded in the same list as on_close's calls."""

    def __init__(self, chunks: list[bytes], events: list[str], *, fails: bool = False) -> None:
        super().__init__(chunks)
        self.events = events
        self.fails = fails

    def close(self) -> None:
        self.events.append("body closed")
        if self.fails:
            raise OSError("file already gone")


def test_the_original_body_is_closed_before_on_close_runs_the_batch():
    events: list[str] = []
    wrapped = ClosingIterable(OrderedBody([b"a"], events), events.append, "batch ran")
    list(wrapped)
    wrapped.close()
    assert events == ["body closed", "batch ran"]


def test_on_close_still_runs_after_the_body_failed_to_close():
    events: list[str] = []
    wrapped = ClosingIterable(OrderedBody([b"a"], events, fails=True), events.append, "batch ran")
    list(wrapped)
    try:
        wrapped.close()
    except OSError:
        events.append("error raised")
    assert events == ["body closed", "batch ran", "error raised"]

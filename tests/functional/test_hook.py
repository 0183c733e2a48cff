"""The hook, through WebTest: when tasks run relative to the response, and that they run once."""

from __future__ import annotations

import pytest
from webob import Request

from tests.functional.conftest import eventually
from tests.functional.shop import BROWSER


def test_tasks_run_after_pyramid_finished_the_request_and_only_once(webapp, recorder):
    response = webapp.get("/probe/defer", params={"name": ["a.first", "a.second"]})
    assert response.text == "deferred True"
    assert recorder.events == ["view-returned", "finished-callback", "a.first", "a.second"]
    webapp.get("/probe/fresh")
    assert recorder.events.count("a.first") == 1


def test_container_lookup_in_a_view_is_the_runner_the_hook_runs(webapp, recorder):
    webapp.get("/probe/container")
    from_container, from_request = recorder.runners
    assert from_container is from_request
    assert recorder.events == ["via-container"]
    assert not from_container.has_tasks()


def test_each_request_gets_a_new_empty_runner(webapp, recorder):
    webapp.get("/probe/defer")
    webapp.get("/probe/defer")
    first, second = recorder.runners
    assert first is not second
    assert webapp.get("/probe/fresh").text == "tasks at start: False"


def test_disabled_mode_runs_tasks_before_the_response_is_returned(make_app, recorder):
    webapp = make_app(**{"deferred_task.enabled": "false"})
    webapp.get("/probe/defer", params={"name": ["a.one", "a.two"]})
    assert recorder.events == ["view-returned", "a.one", "a.two", "finished-callback"]


def test_a_failing_task_changes_nothing_in_the_response_and_is_logged(webapp, recorder, logs):
    response = webapp.get("/probe/failing-task")
    assert response.status_int == 200 and response.text == "the body the client must get"
    assert recorder.events == ["after-failure"]
    [error] = [r for r in logs.records if r["level"].name == "ERROR"]
    assert "probe.explode" in error["message"] and error["exception"].type is RuntimeError


def test_content_length_survives_wrapping_the_body(webapp, recorder):
    """The raw headers the server gets from the router: WebTest would put a Content-Length back
    when it reads the body, hiding a wrapper that dropped it."""
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
        started.append((status, headers))

    environ = Request.blank("/probe/defer", environ=BROWSER).environ
    app_iter = webapp.app(environ, start_response)
    try:
        body = b"".join(app_iter)
    finally:
        app_iter.close()

    [(status, headers)] = started
    names = [name.lower() for name, _ in headers]
    assert status == "200 OK" and names.count("content-length") == 1
    assert dict((name.lower(), value) for name, value in headers)["content-length"] == str(len(body))
    assert "transfer-encoding" not in names
    assert recorder.events[-1] == "probe.task"  # the wrapped body's close() ran the batch


@pytest.mark.parametrize("status", [404, 500])
def test_error_responses_discard_tasks_unless_always(webapp, recorder, logs, status):
    webapp.get(
        "/probe/defer",
        params={"name": "meta.purchase", "always": "audit.log", "status": status},
        status=status,
    )
    assert "meta.purchase" not in recorder.events and "audit.log" in recorder.events
    assert any("meta.purchase" in line and "Discarded" in line for line in logs.at("INFO"))


def test_redirects_are_successes(webapp, recorder):
    webapp.get("/probe/defer", params={"name": "meta.purchase", "status": 302}, status=302)
    assert "meta.purchase" in recorder.events


def test_exception_escaping_pyramid_runs_always_tasks_once_and_discards_the_rest(webapp, recorder, logs):
    with pytest.raises(ValueError, match="view crashed"):
        webapp.get("/probe/raise")
    # No body to wrap: the batch went to the hand-off worker, to run after the error response.
    assert eventually(lambda: recorder.events == ["audit"])
    assert any("probe.purchase" in line for line in logs.at("INFO"))
    assert webapp.get("/probe/fresh").text == "tasks at start: False"
    assert recorder.events == ["audit"]


def test_head_requests_still_run_their_tasks_once(webapp, recorder):
    webapp.head("/probe/defer", params={"name": "a.head"})
    # WebOb sends no body for HEAD: outside gunicorn the batch is handed off (pyramid_deferred.dispatch).
    assert eventually(lambda: "a.head" in recorder.events)
    assert recorder.events.count("a.head") == 1


def test_the_home_page_defers_its_demo_task(webapp, logs):
    response = webapp.get("/")
    assert "demo.page_view" in response.text
    assert any("demo.page_view" in line for line in logs.at("INFO"))

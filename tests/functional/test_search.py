"""Search: Meta Search with the query and what it found, and the Matomo page view."""

from __future__ import annotations

from tests.functional.services_stub import meta_events


def test_a_search_defers_meta_search_and_the_matomo_flush(live, httpserver, deferred_tasks):
    response = live.get("/search", params={"q": "  Merino   WOOL "})
    assert "2 found" in response.text
    assert deferred_tasks.names == ["meta.search", "matomo.flush"]
    deferred_tasks.assert_deferred("meta.search", priority=50)
    [meta] = meta_events(httpserver, "Search")
    assert meta["custom_data"]["search_string"] == "Merino WOOL"
    assert meta["custom_data"]["content_ids"] == ["wool-socks", "wool-hat"]


def test_an_empty_search_is_a_page_view_only(webapp, deferred_tasks):
    webapp.get("/search", params={"q": "   "})
    assert deferred_tasks.names == ["matomo.flush"]


def test_a_search_that_finds_nothing_still_tells_meta(webapp, deferred_tasks):
    assert "0 found" in webapp.get("/search", params={"q": "bicycle"}).text
    deferred_tasks.assert_deferred("meta.search")


def test_an_overlong_query_is_refused(webapp, deferred_tasks):
    webapp.get("/search", params={"q": "x" * 101}, status=400)
    deferred_tasks.assert_nothing_deferred()

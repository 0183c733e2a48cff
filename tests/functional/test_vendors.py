"""Vendor pages: Meta ViewContent for the vendor's products, and the Matomo page view."""

from __future__ import annotations


def test_a_vendor_page_defers_view_content_and_the_matomo_flush(webapp, deferred_tasks):
    response = webapp.get("/vendors/nordic-knits")
    assert "Merino wool socks" in response.text and "Espresso" not in response.text
    assert deferred_tasks.names == ["meta.view_content", "matomo.flush"]
    deferred_tasks.assert_deferred("meta.view_content", priority=50)
    deferred_tasks.assert_deferred("matomo.flush", priority=10)


def test_the_vendor_list_is_only_tracked(webapp, deferred_tasks):
    assert "/vendors/baltic-amber" in webapp.get("/vendors").text
    assert deferred_tasks.names == ["matomo.flush"]


def test_an_unknown_vendor_is_a_404_that_defers_nothing(webapp, deferred_tasks):
    webapp.get("/vendors/nope", status=404)
    deferred_tasks.assert_nothing_deferred()

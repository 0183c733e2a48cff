"""Product pages: Meta ViewContent, Advisable AI view and the Matomo page view, deferred."""

from __future__ import annotations


def test_a_product_page_defers_view_content_the_ai_view_and_one_matomo_flush(webapp, deferred_tasks):
    response = webapp.get("/products/espresso-250")
    assert "Espresso beans 250 g" in response.text and "€12.90" in response.text
    assert deferred_tasks.names == ["meta.view_content", "advisable_ai.view", "matomo.flush"]
    deferred_tasks.assert_deferred("meta.view_content", priority=50, always=False)
    deferred_tasks.assert_deferred("advisable_ai.view", priority=50)
    deferred_tasks.assert_deferred("matomo.flush", priority=10, always=False)
    assert deferred_tasks.executed == deferred_tasks.names  # dry-run: they all ran after the response


def test_the_declared_costs_are_the_services_own(webapp, deferred_tasks):
    webapp.get("/products/espresso-250")
    container = webapp.app.registry.container
    deferred_tasks.assert_deferred("meta.view_content", max_cost_seconds=container.meta().max_cost_seconds)
    deferred_tasks.assert_deferred(
        "advisable_ai.view", max_cost_seconds=container.advisable_ai().max_cost_seconds
    )
    deferred_tasks.assert_deferred("matomo.flush", max_cost_seconds=container.matomo().max_cost_seconds)


def test_a_request_without_a_user_agent_gets_no_meta_event_and_says_so(webapp, deferred_tasks, logs):
    webapp.get("/products/espresso-250", extra_environ={"HTTP_USER_AGENT": ""})
    assert deferred_tasks.names == ["advisable_ai.view", "matomo.flush"]
    assert any(line.startswith("meta.view_content not deferred") for line in logs.at("INFO"))


def test_the_product_list_is_a_tracked_page_without_meta(webapp, deferred_tasks):
    response = webapp.get("/products")
    assert response.content_type == "text/html" and "/products/wool-hat" in response.text
    assert deferred_tasks.names == ["matomo.flush"]


def test_an_unknown_product_is_a_404_that_defers_nothing(webapp, deferred_tasks):
    webapp.get("/products/nope", status=404)
    deferred_tasks.assert_nothing_deferred()


def test_the_page_escapes_what_it_shows(webapp):
    response = webapp.get("/search", params={"q": "<script>alert(1)</script>"})
    assert "<script>alert(1)" not in response.text and "&lt;script&gt;alert(1)" in response.text


def test_the_first_visit_sets_an_http_only_session_cookie_and_later_ones_keep_it(webapp):
    first = webapp.get("/products/espresso-250")
    [cookie] = [c for c in first.headers.getall("Set-Cookie") if c.startswith("shop_session=")]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Set-Cookie" not in webapp.get("/products/wool-hat").headers

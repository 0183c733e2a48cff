"""Registration: Meta CompleteRegistration, Matomo, and the sign-in's Advisable AI session switch."""

from __future__ import annotations

from tests.functional.services_stub import ai_signals
from tests.functional.shop import EMAIL, PHONE, fill_cart, visitor_id


def register(webapp, status=201, **body):
    return webapp.post_json("/api/customers", {"email": EMAIL, "phone": PHONE, **body}, status=status)


def test_registering_defers_the_session_switch_complete_registration_and_matomo(webapp, deferred_tasks):
    assert register(webapp).json == {
        "customer": "c1", "email": "jane.doe@example.com", "meta_event_id": "c1",  # the customer id
    }
    assert deferred_tasks.names == [
        "advisable_ai.session_switch", "meta.complete_registration", "matomo.flush",
    ]
    deferred_tasks.assert_deferred("advisable_ai.session_switch", priority=50)
    deferred_tasks.assert_deferred("meta.complete_registration", priority=50)
    deferred_tasks.assert_deferred("matomo.flush", priority=10)


def test_the_session_switch_names_the_anonymous_history_and_the_cookie_changes(live, httpserver):
    fill_cart(live)
    anonymous = visitor_id(live)
    register(live)
    assert visitor_id(live) != anonymous  # a new token at sign-in
    [switch] = ai_signals(httpserver, "session_switch")
    assert switch["session_id"] == anonymous and switch["user_id"] == "c1"
    assert live.get("/api/cart").json["items"]  # the cart came along


def test_a_taken_address_or_a_bad_one_is_refused_without_tasks(webapp, deferred_tasks):
    register(webapp)
    webapp.reset()  # another visitor
    assert register(webapp, status=409).json == {"error": "this e-mail address is registered already"}
    register(webapp, status=400, email="nobody")
    register(webapp, status=400, phone="12")
    assert [request.names for request in deferred_tasks.requests][1:] == [[], [], []]


def test_a_signed_in_customer_cannot_register_again(webapp, deferred_tasks):
    register(webapp)
    register(webapp, status=409, email="other@example.com")
    assert deferred_tasks.requests[-1].names == []


def test_the_register_page_is_a_tracked_form(webapp, deferred_tasks):
    assert 'data-api="/api/customers"' in webapp.get("/register").text
    assert deferred_tasks.names == ["matomo.flush"]

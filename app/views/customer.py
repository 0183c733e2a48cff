"""Customer registration (the spec's ``Adv_customer``): Meta CompleteRegistration, Matomo, and
the sign-in that ties the visitor's anonymous history to the account (Advisable AI)."""

from __future__ import annotations

from pyramid.response import Response
from pyramid.view import view_config

from app.services import MetaEventName
from app.shop.customers import AlreadyRegistered
from app.views.front import SESSION_COOKIE, ApiError, FrontController
from app.views.layout import api_form, escape


class CustomerController(FrontController):
    @view_config(route_name="register", request_method="GET")
    def form(self) -> Response:
        customer = self.customer
        if customer is not None:
            signed_in = f"<p>You are signed in as {escape(customer.email)}.</p>"
            return self.page("Register", signed_in + api_form("/api/logout", "Log out"))
        fields = (
            '<p><input name="email" type="email" required placeholder="E-mail" aria-label="E-mail"> '
            '<input name="phone" placeholder="Phone (optional)" aria-label="Phone"> '
            '<input name="name" placeholder="Name (optional)" aria-label="Name"></p>'
        )
        return self.page("Register", api_form("/api/customers", "Register", fields))

    @view_config(route_name="customers", request_method="POST", renderer="json")
    def register(self) -> dict[str, object]:
        body = self.json_body()
        if self.customer is not None:
            raise ApiError(409, "you are signed in already")
        try:
            customer = self.shop.customers.register(
                str(body.get("email", "")), str(body.get("phone") or ""), str(body.get("name") or "")
            )
        except AlreadyRegistered as exc:
            raise ApiError(409, str(exc)) from None
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        self.sign_in(customer)
        # Deterministic: one registration per customer id.
        event_id = self.meta_event(MetaEventName.COMPLETE_REGISTRATION, event_id=customer.id)
        self.track_event("customer", "register")
        self.request.response.status_int = 201
        return {"customer": customer.id, "email": customer.email, "meta_event_id": event_id}

    @view_config(route_name="logout", request_method="POST", renderer="json")
    def logout(self) -> dict[str, object]:
        """Sign out: the session ends on the server (its token is worthless from now on) and the
        browser drops the cookie. JSON only, like every API call: no other site can post it."""
        self.json_body()
        self.shop.sessions.end(self.cookie(SESSION_COOKIE))
        self.request.response.delete_cookie(SESSION_COOKIE, path="/")
        return {"signed_in": False}

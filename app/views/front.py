"""The front controller: what every shop controller shares (the spec's ``Adv_front_controller``),
and its own actions, Advisable AI's bookmark, remove_bookmark and rating signals.

A controller defers each integration call with the service's ``max_cost_seconds``; the calls
run after the response (see ``app.deferred_task``). Matomo differs: tracking calls are collected
during the request in the request's tracker, and one ``matomo.flush`` sends them all.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from loguru import logger
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config, view_defaults
from pyramid_deferred import DeferredTaskRunner

from app.services import (
    MatomoTracker,
    MatomoVisit,
    MetaCustomData,
    MetaEvent,
    MetaEventName,
    MetaUserData,
    Signal,
    SignalType,
)
from app.shop import Shop
from app.shop.catalogue import Product
from app.shop.customers import Customer
from app.shop.sessions import ShopSession
from app.views import layout
from containers import Container

CRITICAL = DeferredTaskRunner.PRIORITY_CRITICAL
NORMAL = DeferredTaskRunner.PRIORITY_NORMAL
LOW = DeferredTaskRunner.PRIORITY_LOW

SESSION_COOKIE = "shop_session"
SESSION_MAX_AGE_SECONDS = 30 * 24 * 3600
MATOMO_FLUSH = "matomo.flush"
MIN_STARS, MAX_STARS = 1, 5

log = logger.bind(channel="app")


class ApiError(Exception):
    """Ends an API request with ``status`` and ``{"error": message}`` (see :func:`api_error`)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@view_config(context=ApiError, renderer="json")
def api_error(exc: ApiError, request: Request) -> dict[str, str]:
    request.response.status_int = exc.status
    return {"error": exc.message}


class FrontController:
    """Base class of the shop's view classes: one instance per request."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.container: Container = request.registry.container
        self.shop: Shop = self.container.shop()

    @property
    def runner(self) -> DeferredTaskRunner:
        runner: DeferredTaskRunner = self.request.deferred_task
        return runner

    # --- the visitor ---

    @cached_property
    def session(self) -> ShopSession:
        """The visitor's session; a new one (and its cookie on the response) if need be."""
        session = self.shop.sessions.open(self.cookie(SESSION_COOKIE))
        self.request.add_response_callback(self._set_session_cookie)
        return session

    def _set_session_cookie(self, request: Request, response: Response) -> None:
        token = self.session.token  # read at the end: sign_in() changes it
        if self.cookie(SESSION_COOKIE) != token:
            response.set_cookie(
                SESSION_COOKIE,
                token,
                max_age=SESSION_MAX_AGE_SECONDS,
                path="/",
                httponly=True,
                samesite="Lax",
                secure=request.scheme == "https",
            )

    def cookie(self, name: str) -> str | None:
        """A request cookie; None for all of them when the Cookie header is not UTF-8 (WebOb raises
        while parsing it: the visitor then gets a new session, not a 500)."""
        try:
            value: str | None = self.request.cookies.get(name)
        except UnicodeDecodeError:
            return None
        return value

    @property
    def customer(self) -> Customer | None:
        return self.shop.customers.get(self.session.customer_id)

    def sign_in(self, customer: Customer) -> None:
        """Attach the session to ``customer`` under a new token (so that a token planted
        before sign-in is worthless), and tell Advisable AI whose anonymous history it was."""
        anonymous_visitor = self.session.visitor_id
        self.shop.sessions.rotate(self.session)
        self.session.customer_id = customer.id
        self.signal(Signal(SignalType.SESSION_SWITCH, user_id=customer.id, session_id=anonymous_visitor))

    # --- Advisable AI ---

    def ai_signal(self, type_: SignalType, product: Product, value: float | None = None) -> None:
        """A signal about ``product`` from this visitor (the customer, if signed in)."""
        customer = self.customer
        self.signal(
            Signal(
                type_,
                item_id=product.id,
                user_id=customer.id if customer is not None else None,
                session_id=self.session.visitor_id,
                value=value,
            ),
            priority=CRITICAL if type_ is SignalType.PURCHASE else NORMAL,
        )

    def signal(self, signal: Signal, *, priority: int = NORMAL) -> None:
        ai = self.container.advisable_ai()
        self.runner.defer(
            lambda: ai.send_signal(signal),
            max_cost_seconds=ai.max_cost_seconds,
            priority=priority,
            name=signal.task_name,
        )

    # --- Meta Conversions API ---

    def meta_event(
        self,
        event_name: MetaEventName,
        custom_data: MetaCustomData | None = None,
        *,
        priority: int = NORMAL,
        email: str | None = None,
        phone: str | None = None,
        external_id: str | None = None,
    ) -> None:
        """Defer a Conversions API event for this request. The contact details default to the
        signed-in customer's. A request without a user agent (or a client address) gets no Meta
        event: Meta requires both for website events."""
        customer = self.customer
        if customer is not None:
            email, phone = email or customer.email, phone or customer.phone
            external_id = external_id or customer.id
        user_data = self._meta_user_data(event_name, email, phone, external_id)
        if user_data is None:
            return
        event = MetaEvent(
            event_name,
            event_source_url=self.request.url,
            user_data=user_data,
            custom_data=custom_data or MetaCustomData(),
        )
        meta = self.container.meta()
        self.runner.defer(
            lambda: meta.send_event(event),
            max_cost_seconds=meta.max_cost_seconds,
            priority=priority,
            name=event.task_name,
        )

    def _meta_user_data(
        self, event_name: MetaEventName, email: str | None, phone: str | None, external_id: str | None
    ) -> MetaUserData | None:
        try:
            return MetaUserData(
                client_ip_address=self.request.remote_addr or "",
                client_user_agent=self.request.user_agent or "",
                email=email,
                phone=phone,
                external_id=external_id,
                fbp=self.cookie("_fbp"),
                fbc=self.cookie("_fbc"),
            )
        except ValueError as exc:
            log.info("meta.{} not deferred: {} (Meta needs a client address and user agent)",
                     event_name.action, exc)
            return None

    # --- Matomo ---

    @cached_property
    def tracker(self) -> MatomoTracker:
        """The request's tracker (the container's per-request ``matomo_tracker``)."""
        customer = self.customer
        visit = MatomoVisit(
            url=self.request.url,
            visitor_id=self.session.visitor_id,
            client_ip=self.request.remote_addr,
            user_agent=self.request.user_agent,
            user_id=customer.id if customer is not None else None,
            referrer=self.request.referer,
            language=self.request.headers.get("Accept-Language"),
        )
        tracker: MatomoTracker = self.container.matomo_tracker(visit=visit)
        return tracker

    def track_page_view(self, title: str) -> None:
        self.tracker.track_page_view(title)
        self.defer_matomo_flush()

    def track_event(self, category: str, action: str, *, name: str | None = None,
                    value: float | None = None) -> None:
        self.tracker.track_event(category, action, name=name, value=value)
        self.defer_matomo_flush()

    def defer_matomo_flush(self, *, always: bool = False) -> None:
        """One bulk request per request: ``unique``, so deferring again after more tracking
        replaces the queued flush; nothing at all when nothing was tracked. ``always``: send
        even if the request fails (a declined payment is worth an analytics event)."""
        tracker = self.tracker
        if not tracker.has_tracked:
            return
        self.runner.defer(
            tracker.flush,
            max_cost_seconds=tracker.max_cost_seconds,
            priority=LOW,
            name=MATOMO_FLUSH,
            unique=True,
            always=always,
        )

    # --- responses ---

    def page(self, title: str, body: str) -> Response:
        """An HTML page, tracked as a Matomo page view."""
        self.track_page_view(title)
        response: Response = self.request.response
        response.content_type = "text/html"
        response.text = layout.page(title, body)
        return response

    def json_body(self) -> dict[str, Any]:
        """The request's JSON object. Only ``application/json`` is accepted: a cross-site HTML
        form cannot send it, so the API's POSTs need no CSRF token."""
        if self.request.content_type != "application/json":
            raise ApiError(415, "send a JSON object with Content-Type: application/json")
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except ValueError:
            raise ApiError(400, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        return body

    def product_or_404(self, product_id: str) -> Product:
        product = self.shop.catalogue.product(product_id)
        if product is None:
            raise ApiError(404, f"no product {product_id!r}")
        return product


@view_defaults(renderer="json")
class FrontApi(FrontController):
    """Bookmarks and ratings: Advisable AI learns from them."""

    @view_config(route_name="bookmark", request_method="POST")
    def bookmark(self) -> dict[str, object]:
        self.json_body()  # no fields, but JSON only (see json_body)
        product = self.product_or_404(self.request.matchdict["product_id"])
        if self.session.bookmark(product.id):
            self.ai_signal(SignalType.BOOKMARK, product)
            self.request.response.status_int = 201
        return {"product": product.id, "bookmarked": True}

    @view_config(route_name="bookmark", request_method="DELETE")
    def remove_bookmark(self) -> dict[str, object]:
        product = self.product_or_404(self.request.matchdict["product_id"])
        if self.session.remove_bookmark(product.id):
            self.ai_signal(SignalType.REMOVE_BOOKMARK, product)
        return {"product": product.id, "bookmarked": False}

    @view_config(route_name="rating", request_method="POST")
    def rate(self) -> dict[str, object]:
        stars = self.json_body().get("stars")
        product = self.product_or_404(self.request.matchdict["product_id"])
        stars = whole_number(stars, "stars", MIN_STARS, MAX_STARS)
        self.session.rate(product.id, stars)
        self.ai_signal(SignalType.RATING, product, value=stars)
        return {"product": product.id, "stars": stars}


def whole_number(value: object, name: str, minimum: int, maximum: int) -> int:
    """A JSON number or a form's string of digits, within bounds; ApiError(400) otherwise."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise ApiError(400, f"{name} must be a whole number from {minimum} to {maximum}")
    return value

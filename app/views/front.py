"""The front controller: what every shop controller shares (the spec's ``Adv_front_controller``),
and its own actions, Advisable AI's bookmark, remove_bookmark and rating signals.

A controller defers each integration call with the service's ``max_cost_seconds``; the calls
run after the response (see ``pyramid_deferred``). Matomo differs: tracking calls are collected
during the request in the request's tracker, and one ``matomo.flush`` sends them all.
"""

from __future__ import annotations

import json
import time
import uuid
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from loguru import logger
from pyramid.exceptions import URLDecodeError
from pyramid.httpexceptions import HTTPBadRequest
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config, view_defaults
from pyramid_deferred import DeferredTaskRunner
from pyramid_deferred.durable import durable

from app.durable_tasks import advisable_ai_signal, meta_event, meta_event_to_json, signal_to_json
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
from app.services.matomo import is_page_view_id, new_page_view_id
from app.services.meta import fbc_from_fbclid, valid_fb_cookie
from app.services.public_url import PublicOrigin, referrer_url
from app.shop import Shop
from app.shop.catalogue import Product
from app.shop.customers import Customer
from app.shop.sessions import ShopSession, is_visitor_key, new_visitor_key
from app.views import layout, request_text
from containers import Container

CRITICAL = DeferredTaskRunner.PRIORITY_CRITICAL
NORMAL = DeferredTaskRunner.PRIORITY_NORMAL
LOW = DeferredTaskRunner.PRIORITY_LOW

SESSION_COOKIE = "shop_session"
SESSION_MAX_AGE_SECONDS = 30 * 24 * 3600
# The browser's analytics identity: Matomo's _id derives from it. Its own cookie, because the
# session token is renewed at sign-in and Matomo requires _id not to change for a visitor;
# 13 months, like matomo.js's own visitor cookie.
VISITOR_COOKIE = "shop_visitor"
VISITOR_MAX_AGE_SECONDS = 395 * 24 * 3600
# Meta's click id cookie, when built here from ?fbclid=: 90 days, readable by the pixel.
FBC_COOKIE = "_fbc"
FBC_MAX_AGE_SECONDS = 90 * 24 * 3600
# Sent by the page's script with each API call: the pv_id of the page the call was made from.
PAGE_VIEW_HEADER = "X-Matomo-Pv-Id"
API_PREFIX = "/api/"
MATOMO_FLUSH = "matomo.flush"
MIN_STARS, MAX_STARS = 1, 5
MAX_JSON_DEPTH = 16
"""The API's bodies are flat objects; deeper nesting is refused before any field is read (so that
no later ``str()``/``repr()`` of a field can hit the recursion limit either)."""
BAD_URL = "the URL is not valid UTF-8"
BODY_TOO_DEEP = f"the body is nested deeper than {MAX_JSON_DEPTH} levels"
BODY_NOT_JSON = "the body is not valid JSON"

log = logger.bind(channel="app")


class ApiError(Exception):
    """Ends an API request with ``status`` and ``{"error": message}`` (see :func:`api_error`)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class UnreadableRequest(ApiError):
    """A request the shop cannot read: a body that is not JSON or is nested too deeply. 400, and one
    INFO line (a fixed message: nothing the client sent is logged)."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


@view_config(context=ApiError, renderer="json")
def api_error(exc: ApiError, request: Request) -> dict[str, str]:
    if isinstance(exc, UnreadableRequest):
        log_refused(request, exc.message)
    request.response.status_int = exc.status
    return {"error": exc.message}


@view_config(context=URLDecodeError)
def undecodable_url(exc: URLDecodeError, request: Request) -> Response:
    """A URL whose %-escapes are not UTF-8: 400 before any view runs, whether Pyramid raised while
    matching the path (``/products/%ff``) or :class:`FrontController` found the query string
    undecodable (``/search?q=%ff``). An API path gets the API's error shape, a page a plain 400
    page. Nothing is deferred: no controller ran. The request's own path is not read here (WebOb
    would raise again): the prefix is checked on the WSGI environ's undecoded path."""
    log_refused(request, BAD_URL)
    if is_api_path(request.environ):
        response: Response = request.response
        response.status_int = 400
        response.content_type = "application/json"
        response.text = json.dumps({"error": BAD_URL})
        return response
    return HTTPBadRequest(BAD_URL)


def log_refused(request: Request, reason: str) -> None:
    route = getattr(request, "matched_route", None)
    log.info("request refused (400) on {}: {}", route.name if route is not None else "no route", reason)


def is_api_path(environ: dict[str, Any]) -> bool:
    """The JSON API, by the undecoded path (``SCRIPT_NAME`` + ``PATH_INFO``): readable even when
    the path's bytes are not UTF-8."""
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    return path.startswith(API_PREFIX)


class FrontController:
    """Base class of the shop's view classes: one instance per request."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.container: Container = request.registry.container
        self.shop: Shop = self.container.shop()
        require_decodable_query(request)

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

    def _set_cookie(self, response: Response, name: str, value: str, max_age: int, *,
                    httponly: bool = True) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            httponly=httponly,
            samesite="Lax",
            secure=self.request.scheme == "https",
        )

    @cached_property
    def visitor_key(self) -> str:
        """The long-lived visitor cookie's value; a new one (set on the response) when the
        browser has none or a malformed one. Sign-in leaves it as it is."""
        key = self.cookie(VISITOR_COOKIE)
        if key is None or not is_visitor_key(key):
            key = new_visitor_key()
            self.request.add_response_callback(
                lambda request, response: self._set_cookie(
                    response, VISITOR_COOKIE, key, VISITOR_MAX_AGE_SECONDS
                )
            )
        return key

    # --- the page the visitor is on ---

    @property
    def is_page_request(self) -> bool:
        """An HTML page of the shop, as opposed to a call to its JSON API made by a page."""
        return not is_api_path(self.request.environ)

    @property
    def public_origin(self) -> PublicOrigin:
        origin: PublicOrigin = self.container.public_origin()
        return origin

    @cached_property
    def page_url(self) -> str:
        """The URL in the browser's address bar, which Meta's ``event_source_url`` and Matomo's
        ``url`` want, on the configured public origin (never the Host header) and with only the
        campaign parameters of its query: a page's own path; for an API call, its ``page_url`` body
        field or else its Referer, when on that origin; the API call's path when nothing better."""
        origin = self.public_origin
        if not self.is_page_request:
            for candidate in (self._body_page_url(), self.request.referer):
                url = origin.same_origin_url(candidate)
                if url is not None:
                    return url
        return origin.url(self.request.path, self.request.query_string)

    def _body_page_url(self) -> object:
        try:
            return self.json_body().get("page_url")
        except ApiError:
            return None

    @cached_property
    def page_view_id(self) -> str | None:
        """Matomo's ``pv_id``: new for a page, which shows it to its script; for an API call,
        the one the page sent in the X-Matomo-Pv-Id header (anything malformed is ignored)."""
        if self.is_page_request:
            return new_page_view_id()
        sent = self.request.headers.get(PAGE_VIEW_HEADER)
        return sent if is_page_view_id(sent) else None

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
        """A purchase signal is durable (revenue: it spills to Celery rather than being lost)."""
        ai = self.container.advisable_ai()
        self.runner.defer(
            durable(advisable_ai_signal, signal_to_json(signal), service="advisable_ai")
            if signal.type is SignalType.PURCHASE
            else lambda: ai.send_signal(signal),
            max_cost_seconds=ai.max_cost_seconds,
            priority=priority,
            name=signal.task_name,
            concurrent=True,  # independent HTTP calls: side by side on the add-on's pool
        )

    # --- Meta Conversions API ---

    def meta_event(
        self,
        event_name: MetaEventName,
        custom_data: MetaCustomData | None = None,
        *,
        priority: int = NORMAL,
        event_id: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        external_id: str | None = None,
    ) -> str:
        """Defer a Conversions API event for this request; returns its ``event_id``, which the
        browser pixel must send as its ``eventID`` for Meta to deduplicate the two. Pass the
        event's natural key as ``event_id`` where it has one; a random one otherwise, which the
        page shows to its script (see :meth:`page`). The contact details default to the
        signed-in customer's. A request without a user agent (or a client address) gets no Meta
        event: Meta requires both for website events."""
        event_id = event_id or str(uuid.uuid4())
        self._meta_events.append({"event": event_name.value, "eventID": event_id})
        customer = self.customer
        if customer is not None:
            email, phone = email or customer.email, phone or customer.phone
            external_id = external_id or customer.id
        user_data = self._meta_user_data(event_name, email, phone, external_id)
        if user_data is None:
            return event_id
        event = MetaEvent(
            event_name,
            event_source_url=self.page_url,
            user_data=user_data,
            custom_data=custom_data or MetaCustomData(),
            event_id=event_id,
        )
        meta = self.container.meta()
        self.runner.defer(
            # A Purchase is durable (revenue: it spills to Celery rather than being lost).
            durable(meta_event, meta_event_to_json(event), service="meta")
            if event_name is MetaEventName.PURCHASE
            else lambda: meta.send_event(event),
            max_cost_seconds=meta.max_cost_seconds,
            priority=priority,
            name=event.task_name,
            concurrent=True,
        )
        return event_id

    @cached_property
    def _meta_events(self) -> list[dict[str, str]]:
        return []

    @cached_property
    def fbc(self) -> str | None:
        """The ``_fbc`` cookie; else built from the page's ``fbclid`` query parameter, as Meta
        documents (``fb.1.<ms>.<fbclid>``), and kept in an ``_fbc`` cookie so that later events
        carry the same value. A malformed cookie or fbclid is ignored."""
        cookie = valid_fb_cookie(self.cookie(FBC_COOKIE))
        if cookie is not None:
            return cookie
        fbclid = dict(parse_qsl(urlsplit(self.page_url).query)).get("fbclid")
        fbc = fbc_from_fbclid(fbclid, int(time.time() * 1000)) if fbclid else None
        if fbc is not None:
            self.request.add_response_callback(
                # Not HttpOnly: the pixel reads _fbc too.
                lambda request, response: self._set_cookie(
                    response, FBC_COOKIE, fbc, FBC_MAX_AGE_SECONDS, httponly=False
                )
            )
        return fbc

    def _meta_user_data(
        self, event_name: MetaEventName, email: str | None, phone: str | None, external_id: str | None
    ) -> MetaUserData | None:
        try:
            return MetaUserData(
                client_ip_address=self.request.remote_addr or "",
                client_user_agent=self.user_agent or "",
                email=email,
                phone=phone,
                external_id=external_id,
                fbp=valid_fb_cookie(self.cookie("_fbp")),
                fbc=self.fbc,
            )
        except ValueError:  # its message may quote the address: not logged
            log.info("meta.{} not deferred: no valid client address or no user agent (Meta needs both)",
                     event_name.action)
            return None

    @cached_property
    def user_agent(self) -> str | None:
        """The User-Agent as Meta and Matomo get it: printable, at most 512 characters."""
        return request_text.user_agent(self.request.user_agent)

    # --- Matomo ---

    @cached_property
    def tracker(self) -> MatomoTracker:
        """The request's tracker (the container's per-request ``matomo_tracker``)."""
        customer = self.customer
        visit = MatomoVisit(
            url=self.page_url,
            visitor_id=MatomoVisit.visitor_id_for(self.visitor_key),
            client_ip=self.request.remote_addr,
            user_agent=self.user_agent,
            user_id=customer.id if customer is not None else None,
            # An API call's Referer is the page itself, not where the visitor came from.
            referrer=referrer_url(self.request.referer) if self.is_page_request else None,
            language=request_text.accept_language(self.request.headers.get("Accept-Language")),
            page_view_id=self.page_view_id,
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
            concurrent=True,
        )

    # --- responses ---

    def page(self, title: str, body: str) -> Response:
        """An HTML page, tracked as a Matomo page view. Its ``<body>`` tells the page's script
        what it needs: ``data-matomo-pv-id`` (sent back with API calls in X-Matomo-Pv-Id) and
        ``data-meta-events``, the Meta events of this request with their ``eventID`` for the
        pixel (JSON: ``[{"event": "ViewContent", "eventID": "..."}]``)."""
        self.track_page_view(title)
        data = {"matomo-pv-id": self.page_view_id or ""}
        if self._meta_events:
            data["meta-events"] = json.dumps(self._meta_events, separators=(",", ":"))
        response: Response = self.request.response
        response.content_type = "text/html"
        response.text = layout.page(title, body, data=data)
        return response

    def json_body(self) -> dict[str, Any]:
        """The request's JSON object, read once per request: every API view reads its body here.
        Only ``application/json`` is accepted: a cross-site HTML form cannot send it, so the
        API's POSTs need no CSRF token. Invalid JSON, or nesting deeper than ``MAX_JSON_DEPTH``
        (including a body deep enough to exhaust the parser's recursion), is a 400."""
        body = self._json_body
        if isinstance(body, ApiError):
            raise body
        return body

    @cached_property
    def _json_body(self) -> dict[str, Any] | ApiError:
        if self.request.content_type != "application/json":
            return ApiError(415, "send a JSON object with Content-Type: application/json")
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except RecursionError:
            return UnreadableRequest(BODY_TOO_DEEP)
        except ValueError:
            return UnreadableRequest(BODY_NOT_JSON)
        if nested_deeper_than(body, MAX_JSON_DEPTH):
            return UnreadableRequest(BODY_TOO_DEEP)
        if not isinstance(body, dict):
            return ApiError(400, "the body must be a JSON object")
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


def require_decodable_query(request: Request) -> None:
    """Raise :class:`URLDecodeError` (answered by :func:`undecodable_url`) when the query string's
    %-escapes are not UTF-8: WebOb would raise UnicodeDecodeError at the first ``params`` read."""
    try:
        request.GET  # noqa: B018 - decodes the whole query string
    except UnicodeDecodeError as exc:
        raise URLDecodeError(exc.encoding, exc.object, exc.start, exc.end, exc.reason) from None


def nested_deeper_than(value: object, limit: int) -> bool:
    """Whether a parsed JSON value has lists/objects nested more than ``limit`` deep (iterative:
    no recursion however deep the value)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def whole_number(value: object, name: str, minimum: int, maximum: int) -> int:
    """A JSON number or a form's string of digits, within bounds; ApiError(400) otherwise."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise ApiError(400, f"{name} must be a whole number from {minimum} to {maximum}")
    return value

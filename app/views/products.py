"""Product pages (the spec's ``Adv_products``): Meta ViewContent, Advisable AI view, Matomo."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPNotFound
from pyramid.response import Response
from pyramid.view import view_config

from app.services import MetaContent, MetaCustomData, MetaEventName, SignalType
from app.shop.catalogue import CURRENCY
from app.views.front import FrontController
from app.views.layout import api_form, escape, euros, product_list


class ProductsController(FrontController):
    @view_config(route_name="products", request_method="GET")
    def index(self) -> Response:
        return self.page("Products", product_list(self.shop.catalogue.products))

    @view_config(route_name="product", request_method="GET")
    def show(self) -> Response:
        product = self.shop.catalogue.product(self.request.matchdict["product_id"])
        if product is None:
            raise HTTPNotFound()
        self.meta_event(
            MetaEventName.VIEW_CONTENT,
            MetaCustomData(
                value=product.price,
                currency=CURRENCY,
                contents=(MetaContent(product.id, 1, product.price),),
            ),
        )
        self.ai_signal(SignalType.VIEW, product)
        vendor = self.shop.catalogue.vendor(product.vendor_id)
        vendor_link = (
            f'<a href="/vendors/{escape(vendor.id)}">{escape(vendor.name)}</a>' if vendor else ""
        )
        api = f"/api/bookmarks/{escape(product.id)}"
        rating = self.session.rating(product.id)
        body = (
            f"<p>{escape(product.description)}</p><p>{euros(product.price_cents)} · {vendor_link}</p>"
            + api_form(
                "/api/cart/items",
                "Add to cart",
                f'<input type="hidden" name="product_id" value="{escape(product.id)}">'
                '<input name="quantity" type="number" min="1" max="99" value="1" aria-label="Quantity">',
            )
            + api_form(api, "Bookmark")
            + api_form(api, "Remove bookmark", method="DELETE")
            + api_form(
                f"/api/ratings/{escape(product.id)}",
                "Rate",
                '<input name="stars" type="number" min="1" max="5" '
                f'value="{rating or 5}" aria-label="Stars">',
            )
        )
        return self.page(product.name, body)

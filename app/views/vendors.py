"""Vendor pages (the spec's ``Adv_vendors``): Meta ViewContent for the vendor's products, Matomo."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPNotFound
from pyramid.response import Response
from pyramid.view import view_config

from app.services import MetaContent, MetaCustomData, MetaEventName
from app.views.front import FrontController
from app.views.layout import escape, product_list


class VendorsController(FrontController):
    @view_config(route_name="vendors", request_method="GET")
    def index(self) -> Response:
        items = "".join(
            f'<li><a href="/vendors/{escape(v.id)}">{escape(v.name)}</a></li>'
            for v in self.shop.catalogue.vendors
        )
        return self.page("Vendors", f"<ul>{items}</ul>")

    @view_config(route_name="vendor", request_method="GET")
    def show(self) -> Response:
        vendor = self.shop.catalogue.vendor(self.request.matchdict["vendor_id"])
        if vendor is None:
            raise HTTPNotFound()
        products = self.shop.catalogue.products_of(vendor.id)
        self.meta_event(
            MetaEventName.VIEW_CONTENT,
            MetaCustomData(contents=tuple(MetaContent(p.id, 1, p.price) for p in products)),
        )
        return self.page(vendor.name, product_list(products))

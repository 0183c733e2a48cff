"""Search (the spec's ``Adv_search``): Meta Search with the query and what it found, Matomo."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPBadRequest
from pyramid.response import Response
from pyramid.view import view_config

from app.services import MetaContent, MetaCustomData, MetaEventName
from app.shop.catalogue import MAX_QUERY_CHARS
from app.views.front import FrontController
from app.views.layout import escape, product_list


class SearchController(FrontController):
    @view_config(route_name="search", request_method="GET")
    def search(self) -> Response:
        query = " ".join(str(self.request.params.get("q", "")).split())
        if len(query) > MAX_QUERY_CHARS:
            raise HTTPBadRequest(f"the query is longer than {MAX_QUERY_CHARS} characters")
        if not query:
            return self.page("Search", "<p>Type what you are looking for in the search box.</p>")
        found = self.shop.catalogue.search(query)
        self.meta_event(
            MetaEventName.SEARCH,
            MetaCustomData(
                search_string=query,
                contents=tuple(MetaContent(p.id, 1, p.price) for p in found),
            ),
        )
        return self.page(f"Search: {query}", f"<p>{len(found)} found for “{escape(query)}”.</p>"
                         + product_list(found))

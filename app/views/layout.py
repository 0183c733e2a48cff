"""The shop's HTML: one layout, everything that comes from a visitor or the catalogue escaped."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from app.shop.catalogue import Product

# Forms marked data-api are sent to the JSON API with fetch() (a JSON body, which a cross-site
# form cannot send), and the answer is shown under the form. Each call carries the page's URL
# (page_url, for Meta's event_source_url and Matomo's url) and its Matomo pv_id (a header), so
# that the API's events are attributed to the page the visitor is on (docs/integrations.md).
# A page with the Meta pixel would send each event of data-meta-events, and an API answer's
# meta_event_id, as the pixel's eventID: Meta then counts the browser's and the server's once.
_SCRIPT = """<script>
document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-api]");
  if (!form) return;
  event.preventDefault();
  const method = form.dataset.method || "POST";
  const fields = {...Object.fromEntries(new FormData(form)), page_url: location.href};
  const body = method === "DELETE" ? undefined : JSON.stringify(fields);
  const headers = {"Content-Type": "application/json", "X-Matomo-Pv-Id": document.body.dataset.matomoPvId};
  const answer = await fetch(form.dataset.api, {method, body, headers});
  form.querySelector("output").textContent = answer.status + " " + await answer.text();
});
</script>"""

_NAV = (
    '<nav><a href="/">Home</a> · <a href="/products">Products</a> · <a href="/vendors">Vendors</a> · '
    '<a href="/order">Cart and checkout</a> · <a href="/register">Register</a> · '
    '<form action="/search" style="display:inline"><input name="q" placeholder="Search" aria-label="Search">'
    "</form></nav>"
)


def page(title: str, body: str, *, data: Mapping[str, str] | None = None) -> str:
    """A whole document; ``body`` is HTML already (build it with :func:`escape`); ``data``
    becomes the ``<body>``'s ``data-*`` attributes (escaped), for the page's script."""
    attributes = "".join(
        f' data-{escape(name)}="{escape(value)}"' for name, value in (data or {}).items()
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} · Demo shop</title></head>\n<body{attributes}>{_NAV}\n"
        f"<h1>{escape(title)}</h1>\n{body}\n{_SCRIPT}\n</body></html>\n"
    )


def euros(cents: int) -> str:
    return f"€{cents / 100:.2f}"


def product_list(products: list[Product]) -> str:
    if not products:
        return "<p>No products.</p>"
    items = "".join(
        f'<li><a href="/products/{escape(p.id)}">{escape(p.name)}</a> {euros(p.price_cents)}</li>'
        for p in products
    )
    return f"<ul>{items}</ul>"


def api_form(action: str, label: str, fields: str = "", *, method: str = "POST") -> str:
    """A form sent to the JSON API by the page's script; ``fields`` is HTML."""
    return (
        f'<form data-api="{escape(action)}" data-method="{escape(method)}">{fields}'
        f"<button>{escape(label)}</button> <output></output></form>"
    )


__all__ = ["api_form", "escape", "euros", "page", "product_list"]

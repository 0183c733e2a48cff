"""The shop's HTML: one layout, everything that comes from a visitor or the catalogue escaped."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from pyramid.threadlocal import get_current_registry
from pyramid_deferred.dashboard import dashboard_url

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
    '<nav><a class="brand" href="/">Demo shop</a> <a href="/products">Products</a> '
    '<a href="/vendors">Vendors</a> <a href="/order">Cart and checkout</a> <a href="/register">Register</a> '
    '<form action="/search" class="search"><input name="q" placeholder="Search" aria-label="Search">'
    "</form>{live}</nav>"
)
_LIVE_LINK = '<a class="live" href="{url}" target="deferred-tasks">See the deferred tasks run ↗</a>'

# A small style sheet, inline so that every page stands alone (no static view to configure).
STYLE = """<style>
:root { --ink: #1d2330; --muted: #667085; --line: #e4e7ec; --brand: #0e7490; --bg: #f7f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: var(--bg); }
nav { display: flex; gap: 18px; align-items: center; flex-wrap: wrap; padding: 12px 32px;
  background: #fff; border-bottom: 1px solid var(--line); }
nav a { color: var(--ink); text-decoration: none; font-weight: 500; }
nav a:hover { color: var(--brand); }
nav .brand { font-weight: 700; font-size: 18px; color: var(--brand); margin-right: 12px; }
nav .search { margin: 0; }
nav .live { margin-left: auto; color: #fff; background: var(--brand); padding: 6px 12px; border-radius: 6px; }
nav .live:hover { color: #fff; opacity: .9; }
main { max-width: 960px; margin: 0 auto; padding: 8px 32px 48px; }
h1 { font-size: 26px; margin: 24px 0 12px; }
ul { padding-left: 20px; }
li { margin: 4px 0; }
a { color: var(--brand); }
form { margin: 12px 0; }
input, select, button { font: inherit; padding: 6px 10px; border: 1px solid #d0d5dd; border-radius: 6px; }
button { background: var(--brand); color: #fff; border-color: var(--brand); cursor: pointer; }
button:hover { opacity: .9; }
output { color: var(--muted); font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
code { background: #eef2f6; padding: 1px 5px; border-radius: 4px; }
.tip { background: #ecfdf3; border: 1px solid #abefc6; border-radius: 8px; padding: 10px 14px; }
</style>"""


def live_link() -> str:
    """A link to the live page of deferred tasks, where the app included the dashboard."""
    url = dashboard_url(get_current_registry())
    return _LIVE_LINK.format(url=escape(url)) if url is not None else ""


def page(title: str, body: str, *, data: Mapping[str, str] | None = None) -> str:
    """A whole document; ``body`` is HTML already (build it with :func:`escape`); ``data``
    becomes the ``<body>``'s ``data-*`` attributes (escaped), for the page's script."""
    attributes = "".join(
        f' data-{escape(name)}="{escape(value)}"' for name, value in (data or {}).items()
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} · Demo shop</title>{STYLE}</head>\n"
        f"<body{attributes}>{_NAV.format(live=live_link())}\n"
        f"<main><h1>{escape(title)}</h1>\n{body}\n</main>{_SCRIPT}\n</body></html>\n"
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


__all__ = ["api_form", "escape", "euros", "live_link", "page", "product_list"]

"""What the shop sells: products and their vendors, in memory, with a simple search."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CURRENCY = "EUR"
MAX_QUERY_CHARS = 100


@dataclass(frozen=True, slots=True)
class Vendor:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Product:
    """Prices are whole cents, so totals add up exactly; integrations get euros as floats."""

    id: str
    name: str
    vendor_id: str
    category: str
    price_cents: int
    description: str = ""

    def __post_init__(self) -> None:
        if not self.id or self.price_cents < 0:
            raise ValueError(f"a product needs an id and a price >= 0, got {self.id!r}, {self.price_cents!r}")

    @property
    def price(self) -> float:
        return self.price_cents / 100


class Catalogue:
    """Read-only after construction, so it is shared by every thread without a lock."""

    def __init__(self, vendors: Iterable[Vendor], products: Iterable[Product]) -> None:
        self._vendors = {vendor.id: vendor for vendor in vendors}
        self._products = {product.id: product for product in products}
        unknown = {p.vendor_id for p in self._products.values()} - self._vendors.keys()
        if unknown:
            raise ValueError(f"products refer to unknown vendors: {sorted(unknown)}")

    @property
    def products(self) -> list[Product]:
        return list(self._products.values())

    @property
    def vendors(self) -> list[Vendor]:
        return list(self._vendors.values())

    def product(self, product_id: str) -> Product | None:
        return self._products.get(product_id)

    def vendor(self, vendor_id: str) -> Vendor | None:
        return self._vendors.get(vendor_id)

    def products_of(self, vendor_id: str) -> list[Product]:
        return [p for p in self._products.values() if p.vendor_id == vendor_id]

    def search(self, query: str) -> list[Product]:
        """Products whose name, category, description or vendor contains every word of ``query``."""
        words = query.casefold().split()
        if not words:
            return []

        def text(product: Product) -> str:
            vendor = self._vendors[product.vendor_id].name
            return f"{product.name} {product.category} {product.description} {vendor}".casefold()

        return [p for p in self._products.values() if all(word in text(p) for word in words)]


def demo_catalogue() -> Catalogue:
    return Catalogue(
        vendors=[
            Vendor("tatra-roasters", "Tatra Coffee Roasters"),
            Vendor("nordic-knits", "Nordic Knits"),
            Vendor("baltic-amber", "Baltic Amber Co."),
        ],
        products=[
            Product("espresso-250", "Espresso beans 250 g", "tatra-roasters", "coffee", 1290,
                    "Dark roast, chocolate and hazelnut."),
            Product("filter-1kg", "Filter coffee 1 kg", "tatra-roasters", "coffee", 3450,
                    "Light roast for pour-over and batch brew."),
            Product("wool-socks", "Merino wool socks", "nordic-knits", "clothing", 1800,
                    "Warm socks knitted from merino wool."),
            Product("wool-hat", "Merino wool hat", "nordic-knits", "clothing", 2900,
                    "A ribbed hat, one size."),
            Product("amber-pendant", "Amber pendant", "baltic-amber", "jewellery", 7900,
                    "Baltic amber on a silver chain."),
        ],
    )

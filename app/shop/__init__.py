"""The example shop: an in-memory catalogue, visitors' sessions (carts), customers and orders.

Framework-free and integration-free: the views in ``app.views`` turn what happens here into
deferred integration calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.shop.catalogue import Catalogue, demo_catalogue
from app.shop.customers import Customers
from app.shop.orders import Orders
from app.shop.sessions import Sessions


@dataclass(frozen=True, slots=True)
class Shop:
    catalogue: Catalogue = field(default_factory=demo_catalogue)
    sessions: Sessions = field(default_factory=Sessions)
    customers: Customers = field(default_factory=Customers)
    orders: Orders = field(default_factory=Orders)

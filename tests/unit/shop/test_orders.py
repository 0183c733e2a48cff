import pytest

from app.shop.catalogue import demo_catalogue
from app.shop.orders import ACCEPTED_CARD, DECLINED_CARD, Orders, OrderStatus, PaymentDeclined
from app.shop.sessions import CartLine

CATALOGUE = demo_catalogue()


def lines() -> list[CartLine]:
    hat, socks = CATALOGUE.product("wool-hat"), CATALOGUE.product("wool-socks")
    assert hat is not None and socks is not None
    return [CartLine(hat, 2), CartLine(socks, 1)]


def test_an_order_adds_up_in_cents():
    order = Orders().create(lines(), email="jane@example.com", phone=None, customer_id=None)
    assert (order.total_cents, order.total, order.item_count) == (7600, 76.0, 3)
    assert order.status is OrderStatus.PENDING


def test_a_charged_card_places_the_order():
    orders = Orders()
    order = orders.create(lines(), email="jane@example.com", phone=None, customer_id=None)
    placed = orders.charge(order, ACCEPTED_CARD)
    assert placed.status is OrderStatus.PLACED and orders.get(order.id) == placed


def test_the_declined_test_card_records_a_declined_order():
    orders = Orders()
    order = orders.create(lines(), email="jane@example.com", phone=None, customer_id=None)
    with pytest.raises(PaymentDeclined):
        orders.charge(order, "4000 0000 0000 0002")
    declined = orders.get(order.id)
    assert declined is not None and declined.status is OrderStatus.DECLINED
    with pytest.raises(ValueError, match="not pending"):
        orders.charge(declined, DECLINED_CARD)


def test_an_empty_cart_makes_no_order():
    with pytest.raises(ValueError, match="empty"):
        Orders().create([], email="jane@example.com", phone=None, customer_id=None)

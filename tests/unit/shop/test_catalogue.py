import pytest

from app.shop.catalogue import Catalogue, Product, Vendor, demo_catalogue


def test_search_matches_every_word_in_any_case_across_name_category_description_and_vendor():
    catalogue = demo_catalogue()
    assert [p.id for p in catalogue.search("MERINO hat")] == ["wool-hat"]
    assert [p.id for p in catalogue.search("tatra")] == ["espresso-250", "filter-1kg"]
    assert [p.id for p in catalogue.search("jewellery")] == ["amber-pendant"]
    assert catalogue.search("   ") == [] and catalogue.search("bicycle") == []


def test_prices_are_cents_and_euros_come_out_exact():
    product = demo_catalogue().product("espresso-250")
    assert product is not None and product.price_cents == 1290 and product.price == 12.9


def test_a_product_of_an_unknown_vendor_is_refused():
    with pytest.raises(ValueError, match="unknown vendors"):
        Catalogue([Vendor("a", "A")], [Product("p", "P", "b", "c", 100)])


def test_products_of_a_vendor():
    assert [p.id for p in demo_catalogue().products_of("nordic-knits")] == ["wool-socks", "wool-hat"]

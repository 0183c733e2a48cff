from __future__ import annotations

import hashlib

import pytest

from app.services.manago import ManagoPurchase, ManagoSettings, signature
from app.services.secret import Secret

LIVE = {
    "MANAGO_URL": "https://app3.salesmanago.pl",
    "MANAGO_CLIENT_ID": "client1",
    "MANAGO_API_KEY": "key1",
    "MANAGO_API_SECRET": "secret1",
    "MANAGO_OWNER": "owner@shop.example",
}


def test_the_signature_is_sha1_of_key_client_id_and_secret() -> None:
    expected = hashlib.sha1(b"key1client1secret1", usedforsecurity=False).hexdigest()

    assert signature(Secret("key1"), "client1", Secret("secret1")) == expected


def test_settings_are_live_with_every_credential_and_keep_secrets_out_of_the_repr() -> None:
    settings = ManagoSettings.from_environ(LIVE)

    assert settings.base_url == "https://app3.salesmanago.pl"
    assert "key1" not in repr(settings) and "secret1" not in repr(settings)


def test_a_missing_credential_is_named() -> None:
    environ = {k: v for k, v in LIVE.items() if k != "MANAGO_API_SECRET"}

    with pytest.raises(ValueError, match="but MANAGO_API_SECRET not"):
        ManagoSettings.from_environ(environ)


def test_the_owner_must_be_an_email() -> None:
    with pytest.raises(ValueError, match="MANAGO_OWNER='admin' is not allowed"):
        ManagoSettings.from_environ({**LIVE, "MANAGO_OWNER": "admin"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"email": "nobody"},
        {"order_id": ""},
        {"product_ids": ()},
        {"product_ids": ("a,b",)},
        {"value": float("inf")},
        {"currency": "euro"},
    ],
    ids=["email", "order", "no-products", "comma", "value", "currency"],
)
def test_invalid_purchases_fail_when_built(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "email": "a@b.example",
        "order_id": "o-1",
        "product_ids": ("p-1",),
        "value": 1.0,
        "currency": "EUR",
    }
    with pytest.raises(ValueError):
        ManagoPurchase(**{**fields, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize("location", ["shop-eu", "PL_shop.1/main", "a", "x" * 36])
def test_a_location_of_salesmanagos_length_and_alphabet_is_accepted(location: str) -> None:
    ManagoPurchase("a@b.example", "o-1", ("p-1",), 1.0, "EUR", location=location)


@pytest.mark.parametrize("location", ["", "x" * 37, "shop eu", "sklep-łódź", "shop,eu", "shop\neu"])
def test_a_location_outside_salesmanagos_limits_is_refused(location: str) -> None:
    with pytest.raises(ValueError, match=r"location must be 1 to 36 letters, digits or /_-\."):
        ManagoPurchase("a@b.example", "o-1", ("p-1",), 1.0, "EUR", location=location)


def test_an_external_id_longer_than_salesmanagos_255_characters_is_refused() -> None:
    ManagoPurchase("a@b.example", "o" * 255, ("p-1",), 1.0, "EUR")
    with pytest.raises(ValueError, match="order_id must be 1 to 255 characters"):
        ManagoPurchase("a@b.example", "o" * 256, ("p-1",), 1.0, "EUR")


def test_a_single_id_longer_than_512_characters_leaves_products_empty() -> None:
    purchase = ManagoPurchase("a@b.example", "o-1", ("p" * 513, "q"), 1.0, "EUR")
    assert purchase.products() == ""

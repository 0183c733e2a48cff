import pytest

from app.shop.customers import AlreadyRegistered, Customers


def test_registration_normalises_the_address_and_keeps_the_phone_as_typed():
    customer = Customers().register("  Jane@Example.COM ", " +48 601 234 567 ", " Jane ")
    assert (customer.id, customer.email, customer.phone, customer.name) == (
        "c1", "jane@example.com", "+48 601 234 567", "Jane",
    )


def test_an_address_registers_once_whatever_its_case():
    customers = Customers()
    customers.register("jane@example.com")
    with pytest.raises(AlreadyRegistered):
        customers.register("JANE@example.com")


@pytest.mark.parametrize(
    ("email", "phone"), [("jane", None), ("jane@example.com", "12"), ("a@b.c", "call me")]
)
def test_invalid_details_are_refused(email, phone):
    with pytest.raises(ValueError):
        Customers().register(email, phone)


def test_contact_details_stay_out_of_the_repr():
    customer = Customers().register("jane@example.com", "+48 601 234 567")
    assert "jane" not in repr(customer) and "601" not in repr(customer)

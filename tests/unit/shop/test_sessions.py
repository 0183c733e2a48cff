import threading

import pytest

from app.shop.catalogue import demo_catalogue
from app.shop.sessions import MAX_QUANTITY, Sessions, is_token, is_visitor_key, new_visitor_key

HAT = demo_catalogue().product("wool-hat")


def test_an_unknown_or_malformed_token_opens_a_new_session_with_a_new_token():
    sessions = Sessions()
    assert is_token(sessions.open(None).token)
    assert sessions.open("forged").token != "forged"
    invented = "A" * 32  # well-formed, but never issued (or issued before a restart)
    session = sessions.open(invented)
    assert session.token != invented and is_token(session.token)
    assert sessions.open(invented) is not session, "the invented token was never stored either"


def test_an_ended_session_s_token_opens_a_new_session():
    sessions = Sessions()
    session = sessions.open(None)
    assert sessions.end(session.token) is True
    assert sessions.end(session.token) is False and sessions.end(None) is False
    assert sessions.open(session.token) is not session and len(sessions) == 1


def test_the_same_token_finds_the_same_session():
    sessions = Sessions()
    session = sessions.open(None)
    assert sessions.open(session.token) is session


def test_the_visitor_id_is_a_digest_that_does_not_reveal_the_token():
    session = Sessions().open(None)
    assert len(session.visitor_id) == 16 and session.token not in session.visitor_id
    assert int(session.visitor_id, 16) >= 0


def test_the_oldest_sessions_go_first_beyond_the_bound():
    sessions = Sessions(max_sessions=2)
    first, second = sessions.open(None), sessions.open(None)
    sessions.open(first.token)  # used again: now the most recent
    sessions.open(None)
    assert sessions.open(first.token) is first and sessions.open(second.token) is not second


def test_rotation_keeps_the_state_under_a_new_token():
    sessions = Sessions()
    session = sessions.open(None)
    assert HAT is not None
    session.add_to_cart(HAT, 1)
    old = session.token
    sessions.rotate(session)
    assert session.token != old and sessions.open(session.token).cart[0].product is HAT
    assert sessions.open(old) is not session


def test_quantities_are_bounded_per_product():
    session = Sessions().open(None)
    assert HAT is not None
    session.add_to_cart(HAT, MAX_QUANTITY - 1)
    with pytest.raises(ValueError):
        session.add_to_cart(HAT, 2)
    with pytest.raises(ValueError):
        session.add_to_cart(HAT, 0)


def test_concurrent_additions_from_two_tabs_all_count():
    session = Sessions().open(None)
    assert HAT is not None
    threads = [threading.Thread(target=session.add_to_cart, args=(HAT, 1)) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert session.cart[0].quantity == 50


def test_bookmarks_and_ratings():
    session = Sessions().open(None)
    assert session.bookmark("a") is True and session.bookmark("a") is False
    assert session.remove_bookmark("a") is True and session.remove_bookmark("a") is False
    session.rate("a", 4)
    assert session.rating("a") == 4 and session.rating("b") is None


def test_each_add_to_cart_has_its_own_number_and_the_cart_id_survives_sign_in():
    sessions = Sessions()
    session = sessions.open(None)
    cart_id = session.cart_id
    assert HAT is not None
    first, second = session.add_to_cart(HAT, 1), session.add_to_cart(HAT, 2)
    assert (first.number, second.number) == (1, 2)
    assert second.line.quantity == 3
    sessions.rotate(session)
    assert session.cart_id == cart_id and session.add_to_cart(HAT, 1).number == 3
    assert sessions.open(None).cart_id != cart_id


def test_visitor_keys_are_random_hex_and_anything_else_is_not_one():
    key = new_visitor_key()
    assert is_visitor_key(key) and key != new_visitor_key()
    for bad in (None, "", key.upper(), key[:-1], key + "0", "g" * 32, key[:-1] + "\n"):
        assert not is_visitor_key(bad)

from __future__ import annotations

import pytest

from app.services.breaker_store import BreakerStore
from app.services.http_client import HttpTimeouts, create_http_client
from app.services.meta import (
    API_VERSION,
    MetaContent,
    MetaConversionsService,
    MetaCustomData,
    MetaEvent,
    MetaEventName,
    MetaSettings,
    MetaUserData,
    fbc_from_fbclid,
    valid_fb_cookie,
)

USER = MetaUserData("198.51.100.4", "Mozilla/5.0")


def test_each_event_name_maps_to_its_task_name() -> None:
    names = {
        MetaEvent(name, "https://shop.example/", USER, MetaCustomData(1.0, "EUR")).task_name
        for name in MetaEventName
    }

    assert names == {
        "meta.purchase",
        "meta.add_to_cart",
        "meta.view_content",
        "meta.initiate_checkout",
        "meta.search",
        "meta.complete_registration",
    }


def test_every_event_gets_its_own_id_for_deduplication_with_the_pixel() -> None:
    first = MetaEvent(MetaEventName.VIEW_CONTENT, "https://shop.example/", USER)
    second = MetaEvent(MetaEventName.VIEW_CONTENT, "https://shop.example/", USER)

    assert first.event_id != second.event_id


def test_a_purchase_needs_a_value_and_a_currency() -> None:
    with pytest.raises(ValueError, match="Purchase event needs"):
        MetaEvent(MetaEventName.PURCHASE, "https://shop.example/", USER)


@pytest.mark.parametrize(
    "build",
    [
        lambda: MetaUserData("not-an-ip", "Mozilla/5.0"),
        lambda: MetaUserData("198.51.100.4", "  "),
        lambda: MetaCustomData(value=-1.0, currency="EUR"),
        lambda: MetaCustomData(value=1.0, currency="eur"),
        lambda: MetaCustomData(value=1.0),
        lambda: MetaContent("sku", quantity=0),
        lambda: MetaEvent(MetaEventName.SEARCH, "ftp://shop.example/", USER),
    ],
    ids=["ip", "user-agent", "negative", "currency", "value-alone", "quantity", "url"],
)
def test_invalid_event_parts_fail_when_built_in_the_request(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_contact_details_stay_out_of_the_repr() -> None:
    user = MetaUserData("198.51.100.4", "UA", email="jane@example.com", phone="+48601234567")

    assert "jane" not in repr(user) and "601234567" not in repr(user)


def test_unusable_contact_details_are_left_out_of_the_payload() -> None:
    meta = MetaConversionsService(
        MetaSettings(), create_http_client(), BreakerStore().breaker("meta", MetaSettings().breaker)
    )
    user = MetaUserData("198.51.100.4", "UA", email="not an email", phone="12")
    event = MetaEvent(MetaEventName.COMPLETE_REGISTRATION, "https://shop.example/", user)

    user_data = meta.payload(event)["data"][0]["user_data"]  # type: ignore[index]

    assert user_data == {"client_ip_address": "198.51.100.4", "client_user_agent": "UA"}


def test_settings_default_to_dry_run() -> None:
    settings = MetaSettings.from_environ({})

    assert not settings.live
    assert settings.events_url is None
    assert settings.timeouts == HttpTimeouts(connect=1.0, read=2.0)


def test_settings_build_the_events_url_from_the_environment() -> None:
    settings = MetaSettings.from_environ(
        {
            "META_PIXEL_ID": "1234567890",
            "META_ACCESS_TOKEN": "tok-abc",
            "META_API_VERSION": "v19.0",
            "META_READ_TIMEOUT": "4",
        }
    )

    assert settings.live
    assert settings.events_url == "https://graph.facebook.com/v19.0/1234567890/events"
    assert settings.timeouts.read == 4.0
    assert "tok-abc" not in repr(settings)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"META_PIXEL_ID": "1234567890"}, "META_PIXEL_ID set but META_ACCESS_TOKEN not"),
        ({"META_API_VERSION": "21"}, "META_API_VERSION='21' is not allowed"),
        ({"META_CONNECT_TIMEOUT": "0"}, "META_CONNECT_TIMEOUT='0' is out of range"),
        ({"META_DEFAULT_PHONE_COUNTRY_CODE": "+48"}, "META_DEFAULT_PHONE_COUNTRY_CODE='+48'"),
    ],
)
def test_bad_settings_name_the_variable_and_value(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        MetaSettings.from_environ(environ)


def test_a_bad_access_token_is_reported_without_its_value() -> None:
    with pytest.raises(ValueError) as error:
        MetaSettings.from_environ({"META_PIXEL_ID": "1234567890", "META_ACCESS_TOKEN": "tok en"})

    assert "META_ACCESS_TOKEN" in str(error.value) and "tok" not in str(error.value)


def test_the_default_graph_api_version_is_the_one_of_the_sdk_we_test_against() -> None:
    """Bump the facebook-business test dependency and API_VERSION together (docs/integrations.md)."""
    from facebook_business import apiconfig

    assert apiconfig.ads_api_config["API_VERSION"] == API_VERSION
    assert MetaSettings().events_url is None
    assert MetaSettings.from_environ({}).api_version == API_VERSION


@pytest.mark.parametrize("event_name", [n for n in MetaEventName if n is not MetaEventName.INITIATE_CHECKOUT])
def test_num_items_is_for_initiate_checkout_only(event_name: MetaEventName) -> None:
    custom = MetaCustomData(value=1.0, currency="EUR", num_items=2)
    with pytest.raises(ValueError, match="num_items is documented for InitiateCheckout only"):
        MetaEvent(event_name, "https://shop.example/", USER, custom)
    MetaEvent(MetaEventName.INITIATE_CHECKOUT, "https://shop.example/", USER, custom)


def test_fbc_is_built_from_a_click_id_as_meta_documents() -> None:
    assert fbc_from_fbclid("IwAR2F4-Xy_9zq", 1_554_763_741_205) == "fb.1.1554763741205.IwAR2F4-Xy_9zq"


@pytest.mark.parametrize("fbclid", ["", "a b", "a.b", "x\n", "<script>", "ą", "x" * 501])
def test_a_click_id_that_is_not_one_builds_no_fbc(fbclid: str) -> None:
    assert fbc_from_fbclid(fbclid, 1_554_763_741_205) is None


def test_fb_cookies_are_kept_only_in_the_pixels_format() -> None:
    for good in ("fb.1.1596403881668.1116446470", "fb.1.1554763741205.AbCd_Ef-1.Ag"):
        assert valid_fb_cookie(good) == good
    for bad in (None, "", "fb.1.2", "fb.1.x.3", "fb.1.2.3\n", "fb.1.2.3;x", "fb.12.2.3"):
        assert valid_fb_cookie(bad) is None

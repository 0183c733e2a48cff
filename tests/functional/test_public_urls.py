"""What the shop tells Meta and Matomo about the page: URLs on the configured public origin (never
the Host header), campaign parameters only, and the visitor's headers cut to size, as the local
stubs of the services receive them."""

from __future__ import annotations

import pytest
from pyramid_deferred.values import ConfigError

from app.services.public_url import PublicOrigin, referrer_url, tracking_query
from config.settings import load_app_settings
from tests.functional.services_stub import all_matomo_calls, meta_events
from tests.functional.shop import ORIGIN, fill_cart

EVIL = {"Host": "evil.example"}


def test_a_forged_host_and_a_page_url_elsewhere_still_give_the_public_origin(live, httpserver):
    live.get("/products/wool-hat", headers=EVIL)
    live.post_json("/api/cart/items", {"product_id": "wool-hat", "page_url": "http://evil.example/products/x"},
                   headers={**EVIL, "Referer": "http://evil.example/products/x"}, status=201)

    [view] = meta_events(httpserver, "ViewContent")
    [added] = meta_events(httpserver, "AddToCart")
    assert view["event_source_url"] == f"{ORIGIN}/products/wool-hat"
    assert added["event_source_url"] == f"{ORIGIN}/api/cart/items"
    assert {call["url"] for call in all_matomo_calls(httpserver)} == {f"{ORIGIN}/products/wool-hat"}


def test_a_page_url_on_the_public_origin_is_taken_whatever_the_host(live, httpserver):
    body = {"product_id": "wool-hat", "page_url": f"{ORIGIN}/products/wool-hat#reviews"}
    live.post_json("/api/cart/items", body, headers=EVIL, status=201)
    [added] = meta_events(httpserver, "AddToCart")
    assert added["event_source_url"] == f"{ORIGIN}/products/wool-hat"


QUERY = ("utm_source=news&email=jane%40example.com&utm_campaign=spring&token=s3cr3t&gclid=Cj0K"
         "&fbclid=IwAR2F4&phone=%2B48601234567&mtm_kwd=hat")
KEPT = "utm_source=news&utm_campaign=spring&gclid=Cj0K&fbclid=IwAR2F4&mtm_kwd=hat"


def test_only_campaign_parameters_travel_in_the_page_s_url(live, httpserver):
    live.get(f"/products/wool-hat?{QUERY}")

    [view] = meta_events(httpserver, "ViewContent")
    [call] = all_matomo_calls(httpserver)
    assert view["event_source_url"] == call["url"] == f"{ORIGIN}/products/wool-hat?{KEPT}"


def test_only_campaign_parameters_travel_in_the_url_an_api_call_reports(live, httpserver):
    fill_cart(live)  # no page_url, no Referer: the API call's own path, its query filtered
    live.post_json(f"/api/cart/items?{QUERY}", {"product_id": "wool-hat"}, status=201)
    body = {"product_id": "wool-socks", "page_url": f"{ORIGIN}/products/wool-socks?{QUERY}"}
    live.post_json("/api/cart/items", body, status=201)

    urls = [event["event_source_url"] for event in meta_events(httpserver, "AddToCart")]
    assert urls == [f"{ORIGIN}/api/cart/items", f"{ORIGIN}/api/cart/items?{KEPT}",
                    f"{ORIGIN}/products/wool-socks?{KEPT}"]


def test_the_referrer_matomo_gets_keeps_its_site_and_path_and_the_campaign_parameters_only(live, httpserver):
    referer = "https://user:pw@search.example/results?q=jane+doe+601234567&utm_medium=cpc#top"
    live.get("/products/wool-hat", headers={"Referer": referer})
    [call] = all_matomo_calls(httpserver)
    assert call["urlref"] == "https://search.example/results?utm_medium=cpc"


def test_a_huge_referer_user_agent_and_accept_language_are_cut_before_they_are_sent(live, httpserver, logs):
    huge = "x" * 150_000
    headers = {"Referer": f"https://news.example/{huge}", "User-Agent": "Mozilla/5.0 " + huge,
               "Accept-Language": "pl-PL,pl;q=0.9," + ",".join(["en;q=0.5"] * 20_000)}

    live.get("/products/wool-hat", headers=headers)

    [view] = meta_events(httpserver, "ViewContent")
    [call] = all_matomo_calls(httpserver)
    assert view["user_data"]["client_user_agent"] == call["ua"] == ("Mozilla/5.0 " + huge)[:512]
    assert "urlref" not in call, "a URL past 2048 characters is dropped"
    assert call["lang"].startswith("pl-PL,pl;q=0.9,en;q=0.5") and len(call["lang"]) <= 100
    assert max(len(str(record["message"])) for record in logs.records) < 1000, "no header reached a line"


def test_control_characters_in_the_user_agent_do_not_travel(live, httpserver):
    live.get("/products/wool-hat", headers={"User-Agent": "Mozilla/5.0\r\x0bFORGED\x1b[2J"})
    [view] = meta_events(httpserver, "ViewContent")
    assert view["user_data"]["client_user_agent"] == "Mozilla/5.0??FORGED?[2J"


def test_an_accept_language_that_is_not_one_is_not_sent(live, httpserver):
    live.get("/products/wool-hat", headers={"Accept-Language": "<script>alert(1)</script>"})
    [call] = all_matomo_calls(httpserver)
    assert "lang" not in call


# --- the parts, on their own ---


@pytest.mark.parametrize(("query", "kept"), [
    ("", ""), ("email=a%40b.example", ""), ("UTM_SOURCE=x", ""), ("utm_source=", ""),
    ("utm_source=a&utm_source=b", "utm_source=a&utm_source=b"), ("pk_campaign=x&q=y", "pk_campaign=x"),
    ("fbclid=" + "a" * 501, ""), ("fbclid=" + "a" * 500, "fbclid=" + "a" * 500),
    ("utm_" + "x" * 40 + "=1", ""),
    ("&".join(f"utm_{i}=1" for i in range(30)), "&".join(f"utm_{i}=1" for i in range(20))),
])
def test_the_campaign_parameter_allow_list(query, kept):
    assert tracking_query(query) == kept


@pytest.mark.parametrize(("candidate", "url"), [
    (f"{ORIGIN}/a?b=1&utm_id=2#f", f"{ORIGIN}/a?utm_id=2"),
    (f"{ORIGIN}:443/a", f"{ORIGIN}/a"),
    ("https://SHOP.example/a", f"{ORIGIN}/a"),
    (ORIGIN, f"{ORIGIN}/"),
    ("http://shop.example/a", None),  # another scheme: another origin
    ("https://shop.example:8443/a", None),
    ("https://shop.example.evil.example/a", None),
    ("https://evil.example/https://shop.example/", None),
    ("https://user@shop.example/a", None),
    ("https://shop.example/a b", None),
    (f"{ORIGIN}/" + "x" * 2048, None),
    ("javascript:alert(1)", None),
    (42, None),
])
def test_only_a_url_of_the_public_origin_is_taken_from_a_browser(candidate, url):
    assert PublicOrigin(ORIGIN).same_origin_url(candidate) == url


@pytest.mark.parametrize(("referer", "url"), [
    ("https://a.example/p?q=x&utm_term=y#z", "https://a.example/p?utm_term=y"),
    ("http://u:p@a.example:8080/", "http://a.example:8080/"),
    ("ftp://a.example/", None), ("https:///nohost", None), ("https://a.example:99999/", None), ("", None),
])
def test_the_referrer_is_cleaned_or_dropped(referer, url):
    assert referrer_url(referer) == url


@pytest.mark.parametrize("raw", [
    "shop.example", "https://shop.example/path", "https://shop.example?x=1", "https://user:pw@shop.example",
    "ftp://shop.example", "https://", "https://shop.example:port", "https://shop example",
])
def test_the_public_origin_setting_refuses_anything_but_an_origin(raw):
    with pytest.raises(ConfigError, match="APP_PUBLIC_ORIGIN"):
        load_app_settings({}, {"APP_PUBLIC_ORIGIN": raw})


def test_the_public_origin_setting_is_normalised():
    assert load_app_settings({}, {"APP_PUBLIC_ORIGIN": " HTTPS://Shop.Example/ "}).public_origin == ORIGIN
    assert load_app_settings({"app.public_origin": "http://[::1]:6543"}, {}).public_origin == "http://[::1]:6543"

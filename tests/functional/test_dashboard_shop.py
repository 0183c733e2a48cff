"""The example shop with the live dashboard: the pages link to it, its panel shows the services'
circuit breakers, and only development turns it on."""

from __future__ import annotations

import configparser

from pyramid_deferred.dashboard import dashboard_url

from tests.functional.shop import fill_cart
from tests.reliability.bad_input import ROOT

DEV = {"dashboard.enabled": "true", "dashboard.require_token": "false"}


def test_the_home_page_and_the_shop_s_pages_link_to_the_live_page(make_app):
    app = make_app(**DEV)

    home = app.get("/")
    products = app.get("/products")

    assert 'href="/_deferred"' in home.text and "Add to cart" in home.text
    assert 'href="/_deferred"' in products.text
    assert "<style>" in products.text, "the shop's pages carry their style sheet"
    assert dashboard_url(app.app.registry) == "/_deferred"


def test_without_the_dashboard_there_is_no_link_and_no_page(make_app):
    app = make_app()

    assert "/_deferred" not in app.get("/").text
    assert "/_deferred" not in app.get("/products").text
    app.get("/_deferred", status=404)


def test_adding_to_the_cart_shows_its_tasks_and_the_breakers_on_the_dashboard(make_app):
    app = make_app(**DEV)

    fill_cart(app)

    payload = app.get("/_deferred/data.json").json
    [run] = [run for run in payload["runs"] if run["request"] == "POST /api/cart/items"]
    assert run["status"] == 201 and run["tasks"]
    assert {task["outcome"] for task in run["tasks"]} <= {"executed", "skipped"}
    [breakers] = payload["panels"]
    assert breakers["title"] == "Circuit breakers" and breakers["error"] is None
    services = {row["service"]: row for row in breakers["rows"]}
    assert services and all(row["state"] == "closed" for row in services.values())
    assert all(row["state kept in"] == "this process" for row in services.values())


def test_the_dashboard_is_on_in_development_and_off_in_production():
    def settings(name: str) -> configparser.SectionProxy:
        parser = configparser.ConfigParser()
        parser.read(ROOT / "config" / name)
        return parser["app:main"]

    assert settings("development.ini")["dashboard.enabled"] == "true"
    assert settings("production.ini")["dashboard.enabled"] == "false"
    assert "dashboard.token" not in settings("production.ini"), "a token belongs in the environment"

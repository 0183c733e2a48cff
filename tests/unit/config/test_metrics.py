"""Metrics settings: off by default, environment over .ini, errors that name the variable."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from config.metrics import MetricsSettings, load_metrics_settings
from config.values import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"


def test_metrics_are_off_by_default_at_slash_metrics():
    assert load_metrics_settings({}, {}) == MetricsSettings(enabled=False, path="/metrics")


def test_ini_settings_apply_and_the_environment_wins():
    ini = {"metrics.enabled": "true", "metrics.path": "/internal/metrics"}
    assert load_metrics_settings(ini, {}) == MetricsSettings(True, "/internal/metrics")
    environ = {"APP_METRICS_ENABLED": "off", "APP_METRICS_PATH": "/_m"}
    assert load_metrics_settings(ini, environ) == MetricsSettings(False, "/_m")


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("APP_METRICS_ENABLED", "sometimes", "true"),
        ("APP_METRICS_PATH", "metrics", "absolute URL path"),
        ("APP_METRICS_PATH", "", "absolute URL path"),
        ("APP_METRICS_PATH", "/{name}", "absolute URL path"),
        ("APP_METRICS_PATH", "/a b", "absolute URL path"),
        ("APP_METRICS_PATH", "//metrics", "absolute URL path"),
        ("APP_METRICS_PATH", "/m\u00e9trics", "absolute URL path"),
        ("APP_METRICS_PATH", "/" + "m" * 200, "at most 200"),
    ],
)
def test_invalid_values_stop_start_up_naming_variable_value_and_allowed(variable, value, allowed):
    with pytest.raises(ConfigError) as error:
        load_metrics_settings({}, {variable: value})
    message = str(error.value)
    assert variable in message and repr(value) in message and allowed in message


def ini_settings(name: str) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(CONFIG_DIR / name)
    return dict(parser["app:main"])


def test_production_ini_keeps_metrics_off_and_development_ini_turns_them_on():
    assert load_metrics_settings(ini_settings("production.ini"), {}).enabled is False
    assert load_metrics_settings(ini_settings("development.ini"), {}).enabled is True

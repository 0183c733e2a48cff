"""The app's own settings (logging, metrics on or off): declared like the add-on's, so the same
invalid values are refused with a message naming the variable, the value and what is allowed."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from pyramid_deferred.settings import declared, load
from pyramid_deferred.values import ConfigError

from config.settings import AppSettings, load_app_settings

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"
INVALID = {"empty": "", "word": "sometimes", "negative": "-1", "huge": "9" * 400}
TEXT_SETTINGS = {"DEFERRED_TASK_LOG_PATH"}
"""A file path accepts any non-empty text."""
CASES = [
    (decl, kind, raw)
    for _, decl in declared(AppSettings)
    for kind, raw in INVALID.items()
    if decl.env not in TEXT_SETTINGS or kind == "empty"
]


def test_no_variable_is_required():
    settings = load_app_settings({}, {})
    assert settings == AppSettings()
    assert (settings.log_threshold, settings.log_max_files) == ("WARNING", 15)
    assert settings.metrics_enabled is False


@pytest.mark.parametrize(("decl", "kind", "raw"), CASES, ids=[f"{d.env}-{k}" for d, k, _ in CASES])
def test_an_invalid_value_is_refused_naming_the_variable_the_value_and_what_is_allowed(decl, kind, raw):
    with pytest.raises(ConfigError) as error:
        load(AppSettings, {}, {decl.env: raw})
    message = str(error.value)
    assert decl.env in message and repr(raw) in message and decl.parse.allowed in message


def test_threshold_accepts_notice_in_any_case():
    assert load_app_settings({}, {"DEFERRED_TASK_LOG_THRESHOLD": "notice"}).log_threshold == "NOTICE"


def test_ini_settings_apply_and_the_environment_wins():
    ini = {"metrics.enabled": "true", "app.log_level": "debug"}
    assert load_app_settings(ini, {}).metrics_enabled is True
    settings = load_app_settings(ini, {"APP_METRICS_ENABLED": "off"})
    assert settings.metrics_enabled is False and settings.app_log_level == "DEBUG"


def ini_settings(name: str) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(CONFIG_DIR / name)
    return dict(parser["app:main"])


def test_production_ini_keeps_metrics_off_and_development_ini_turns_them_on():
    assert load_app_settings(ini_settings("production.ini"), {}).metrics_enabled is False
    assert load_app_settings(ini_settings("development.ini"), {}).metrics_enabled is True

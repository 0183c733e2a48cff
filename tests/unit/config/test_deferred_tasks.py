"""Settings: defaults, environment over .ini, and start-up errors that name the variable."""

from __future__ import annotations

import pytest

from config.deferred_tasks import DeferredTaskSettings, load_deferred_task_settings
from config.values import ConfigError


def test_no_variable_is_required_and_defaults_match_the_spec():
    settings = load_deferred_task_settings({}, {})
    assert settings == DeferredTaskSettings()
    assert (settings.enabled, settings.budget_seconds) == (True, 10.0)
    assert (settings.log_threshold, settings.log_max_files) == ("WARNING", 15)


@pytest.mark.parametrize("word", ["true", "TRUE", "1", "yes", "On", " on "])
def test_enabled_accepts_true_words_in_any_case(word):
    assert load_deferred_task_settings({}, {"APP_DEFERRED_TASK_ENABLED": word}).enabled is True


@pytest.mark.parametrize("word", ["false", "False", "0", "no", "OFF"])
def test_enabled_accepts_false_words_in_any_case(word):
    assert load_deferred_task_settings({}, {"APP_DEFERRED_TASK_ENABLED": word}).enabled is False


def test_ini_settings_apply_and_the_environment_wins():
    ini = {"deferred_task.budget_seconds": "3", "deferred_task.enabled": "false"}
    assert load_deferred_task_settings(ini, {}).budget_seconds == 3.0
    settings = load_deferred_task_settings(ini, {"APP_DEFERRED_TASK_BUDGET_SECONDS": "7.5"})
    assert settings.budget_seconds == 7.5 and settings.enabled is False


def test_budget_zero_means_unlimited_and_is_accepted():
    assert load_deferred_task_settings({}, {"APP_DEFERRED_TASK_BUDGET_SECONDS": "0"}).budget_seconds == 0


def test_threshold_accepts_notice_in_any_case():
    settings = load_deferred_task_settings({}, {"DEFERRED_TASK_LOG_THRESHOLD": "notice"})
    assert settings.log_threshold == "NOTICE"


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("APP_DEFERRED_TASK_ENABLED", "", "true"),
        ("APP_DEFERRED_TASK_ENABLED", "maybe", "false"),
        ("APP_DEFERRED_TASK_BUDGET_SECONDS", "", "number of seconds"),
        ("APP_DEFERRED_TASK_BUDGET_SECONDS", "-1", "0 = unlimited"),
        ("APP_DEFERRED_TASK_BUDGET_SECONDS", "nan", "number of seconds"),
        ("APP_DEFERRED_TASK_BUDGET_SECONDS", "inf", "number of seconds"),
        ("APP_DEFERRED_TASK_BUDGET_SECONDS", "ten", "number of seconds"),
        ("APP_DEFERRED_TASK_BUDGET_SECONDS", "1e300", "86400"),
        ("DEFERRED_TASK_LOG_THRESHOLD", "LOUD", "DEBUG, INFO, NOTICE, WARNING, ERROR, CRITICAL"),
        ("DEFERRED_TASK_LOG_MAX_FILES", "0", "from 1 to"),
        ("DEFERRED_TASK_LOG_MAX_FILES", "1.5", "whole number"),
        ("DEFERRED_TASK_LOG_MAX_FILES", "99999999999", "from 1 to"),
        ("DEFERRED_TASK_LOG_PATH", " ", "file path"),
        ("APP_LOG_LEVEL", "chatty", "DEBUG"),
    ],
)
def test_invalid_values_stop_start_up_naming_variable_value_and_allowed(variable, value, allowed):
    with pytest.raises(ConfigError) as error:
        load_deferred_task_settings({}, {variable: value})
    message = str(error.value)
    assert variable in message and repr(value) in message and allowed in message


def test_invalid_ini_value_names_the_ini_key():
    with pytest.raises(ConfigError, match=r"deferred_task\.budget_seconds \(\.ini setting\)"):
        load_deferred_task_settings({"deferred_task.budget_seconds": "-5"}, {})

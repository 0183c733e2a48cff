"""Settings: defaults, environment over the app's settings, and errors that name the source.

Every declared setting is tried with the same invalid values: the declaration alone drives
the check, so a setting added later is tested without a line here.
"""

from __future__ import annotations

import pytest

from pyramid_deferred.metrics import MetricsSettings
from pyramid_deferred.settings import (
    DeferredTaskSettings,
    declared,
    load,
    load_deferred_task_settings,
    settings_table,
)
from pyramid_deferred.values import ConfigError

INVALID = {"empty": "", "word": "sometimes", "negative": "-1", "NaN": "nan", "huge": "9" * 400}
CASES = [
    (cls, item.name, decl, kind, raw)
    for cls in (DeferredTaskSettings, MetricsSettings)
    for item, decl in declared(cls)
    for kind, raw in INVALID.items()
]


def test_no_setting_is_required_and_the_defaults_match_the_spec():
    settings = load_deferred_task_settings({}, {})
    assert settings == DeferredTaskSettings()
    assert (settings.enabled, settings.budget_seconds, settings.hard_limit_seconds) == (True, 10.0, 0.0)
    assert (settings.strategy, settings.request_id) == ("auto", True)


@pytest.mark.parametrize(("cls", "name", "decl", "kind", "raw"), CASES,
                         ids=[f"{decl.env}-{kind}" for _, _, decl, kind, _ in CASES])
def test_an_invalid_value_is_refused_naming_the_variable_the_value_and_what_is_allowed(
    cls, name, decl, kind, raw
):
    with pytest.raises(ConfigError) as error:
        load(cls, {}, {decl.env: raw})
    message = str(error.value)
    assert decl.env in message and repr(raw) in message and decl.parse.allowed in message


@pytest.mark.parametrize(("cls", "decl"), [(cls, decl) for cls in (DeferredTaskSettings, MetricsSettings)
                                           for _, decl in declared(cls)], ids=lambda v: getattr(v, "key", ""))
def test_a_bad_ini_value_names_the_ini_key(cls, decl):
    with pytest.raises(ConfigError, match=rf"{decl.key} \(\.ini setting\)='sometimes'"):
        load(cls, {decl.key: "sometimes"}, {})


@pytest.mark.parametrize("word", ["true", "TRUE", "1", "yes", "On", " on "])
def test_enabled_accepts_true_words_in_any_case(word):
    assert load_deferred_task_settings({}, {"APP_DEFERRED_TASK_ENABLED": word}).enabled is True


@pytest.mark.parametrize("word", ["false", "False", "0", "no", "OFF"])
def test_enabled_accepts_false_words_in_any_case(word):
    assert load_deferred_task_settings({}, {"APP_DEFERRED_TASK_ENABLED": word}).enabled is False


def test_the_app_s_settings_apply_and_the_environment_wins():
    ini = {"deferred_task.budget_seconds": "3", "deferred_task.enabled": "false"}
    assert load_deferred_task_settings(ini, {}).budget_seconds == 3.0
    settings = load_deferred_task_settings(ini, {"APP_DEFERRED_TASK_BUDGET_SECONDS": "7.5"})
    assert settings.budget_seconds == 7.5 and settings.enabled is False


@pytest.mark.parametrize(("raw", "budget"), [("0", 0.0), ("86400", 86400.0), (" 2.5 ", 2.5)])
def test_budget_bounds_are_accepted(raw, budget):
    assert load_deferred_task_settings({}, {"APP_DEFERRED_TASK_BUDGET_SECONDS": raw}).budget_seconds == budget


@pytest.mark.parametrize("raw", ["inf", "86400.5", "1e300"])
def test_budget_beyond_a_day_is_refused(raw):
    with pytest.raises(ConfigError, match="APP_DEFERRED_TASK_BUDGET_SECONDS"):
        load_deferred_task_settings({}, {"APP_DEFERRED_TASK_BUDGET_SECONDS": raw})


def test_the_generated_table_has_one_row_per_declared_setting():
    table = settings_table(DeferredTaskSettings, MetricsSettings)
    for cls in (DeferredTaskSettings, MetricsSettings):
        for _, decl in declared(cls):
            [row] = [line for line in table.splitlines() if f"`{decl.key}`" in line]
            assert f"`{decl.env}`" in row and decl.parse.allowed in row

"""Settings: defaults, environment over the app's settings, and errors that name the source.

Every declared setting is tried with the same invalid values: the declaration alone drives
the check, so a setting added later is tested without a line here.
"""

from __future__ import annotations

import pytest

from pyramid_deferred.dashboard import DashboardSettings
from pyramid_deferred.metrics import MetricsSettings
from pyramid_deferred.settings import (
    DeferredTaskSettings,
    declared,
    load,
    load_deferred_task_settings,
    settings_table,
)
from pyramid_deferred.values import ConfigError, SecretParser, parse_broker_url, parse_token

INVALID = {"empty": "", "word": "sometimes", "negative": "-1", "NaN": "nan", "huge": "9" * 400}
CLASSES = (DeferredTaskSettings, MetricsSettings, DashboardSettings)
CASES = [
    (cls, item.name, decl, kind, raw)
    for cls in CLASSES
    for item, decl in declared(cls)
    if item.repr  # a secret (the broker URL, a token) is never echoed, and empty turns it off: below
    for kind, raw in INVALID.items()
]
BAD_SECRETS = {
    parse_broker_url: ("sometimes", "-1", "http://user:pw-in-url@host/0", "redis://:pw in space@h",
                       "9" * 400),
    parse_token: ("sometimes", "-1", "with spaces in the token 1234", "aaaaaaaaaaaaaaaa", "password12345678",
                  "Passw0rd-Passw0rd", "0123456789abcdef", "9" * 400, "x" * 513),
}
"""Per secret parser, values it must refuse: a malformed one, a short or long one, a guessable one."""
SECRET_CASES = [
    (cls, decl, raw)
    for cls in CLASSES
    for item, decl in declared(cls)
    if not item.repr
    for raw in BAD_SECRETS[decl.parse]
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


@pytest.mark.parametrize(("cls", "decl", "raw"), SECRET_CASES,
                         ids=[f"{d.env}-{i}" for i, (_, d, _) in enumerate(SECRET_CASES)])
def test_a_secret_setting_s_bad_value_names_the_variable_but_never_shows_the_value(cls, decl, raw):
    with pytest.raises(ConfigError) as error:
        load(cls, {}, {decl.env: raw})
    message = str(error.value)
    assert decl.env in message and "value hidden" in message and raw not in message


def test_the_broker_url_is_off_when_empty_and_kept_out_of_the_settings_repr():
    assert load_deferred_task_settings({}, {"APP_DEFERRED_TASK_BROKER_URL": " "}).broker_url == ""
    url = "redis://:hunter2-secret@127.0.0.1:6379/0"
    settings = load_deferred_task_settings({"deferred_task.broker_url": url}, {})
    assert settings.broker_url == url and "hunter2" not in repr(settings)


@pytest.mark.parametrize(("cls", "decl"), [(cls, decl) for cls in CLASSES
                                           for _, decl in declared(cls)], ids=lambda v: getattr(v, "key", ""))
def test_a_bad_ini_value_names_the_ini_key(cls, decl):
    shown = " \\(value hidden\\)" if isinstance(decl.parse, SecretParser) else "='sometimes'"
    with pytest.raises(ConfigError, match=rf"{decl.key} \(\.ini setting\){shown}"):
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
    table = settings_table(*CLASSES)
    for cls in CLASSES:
        for _, decl in declared(cls):
            [row] = [line for line in table.splitlines() if line.startswith(f"| `{decl.key}` |")]
            assert f"`{decl.env}`" in row and decl.parse.allowed in row


TOKEN = "Zq4v-8rT_kd2LwP9xHn3mYc6"
"""Random, as ``secrets.token_urlsafe(18)`` makes them."""


@pytest.mark.parametrize("cls", [DashboardSettings, MetricsSettings])
def test_a_random_token_is_taken_and_kept_out_of_every_repr(cls):
    [(item, decl)] = [(item, decl) for item, decl in declared(cls) if item.name == "token"]
    settings = load(cls, {decl.key: TOKEN}, {})
    assert settings.token == TOKEN and not item.repr
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)


@pytest.mark.parametrize("token", ["aaaaaaaaaaaaaaaa", "password12345678"])
def test_a_guessable_token_is_refused_saying_how_to_make_a_good_one(token):
    with pytest.raises(ConfigError) as error:
        load(DashboardSettings, {}, {"APP_DASHBOARD_TOKEN": token})
    message = str(error.value)
    assert "APP_DASHBOARD_TOKEN" in message and "too easy to guess" in message and token not in message
    assert "secrets.token_urlsafe(32)" in message


@pytest.mark.parametrize("token", ["", "   "])
def test_an_empty_token_means_no_token(token):
    assert load(DashboardSettings, {}, {"APP_DASHBOARD_TOKEN": token}).token == ""

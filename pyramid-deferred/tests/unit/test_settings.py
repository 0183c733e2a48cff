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
from pyramid_deferred.values import (
    ConfigError,
    SecretParser,
    parse_broker_url,
    parse_dashboard_redis_url,
    parse_fernet_keys,
    parse_signing_keys,
    parse_token,
)

INVALID = {"empty": "", "word": "sometimes", "negative": "-1", "NaN": "nan", "huge": "9" * 400}
CLASSES = (DeferredTaskSettings, MetricsSettings, DashboardSettings)
CASES = [
    (cls, item.name, decl, kind, raw)
    for cls in CLASSES
    for item, decl in declared(cls)
    if item.repr  # a secret (the broker URL, a token) is never echoed, and empty turns it off: below
    for kind, raw in INVALID.items()
]
BAD_REDIS_URLS = ("sometimes", "-1", "http://user:pw-in-url@host/0", "redis://:pw in space@h", "9" * 400)
BAD_SECRETS = {
    parse_broker_url: BAD_REDIS_URLS,
    parse_dashboard_redis_url: BAD_REDIS_URLS,
    parse_token: ("sometimes", "-1", "with spaces in the token 1234", "aaaaaaaaaaaaaaaa", "password12345678",
                  "Passw0rd-Passw0rd", "0123456789abcdef", "a" * 32, "hunter2" * 5, "9" * 400, "x" * 513),
    parse_signing_keys: ("sometimes", "-1", "with spaces in the key of thirty-two characters", "h" * 400,
                         "9" * 400, "hunter2" * 5, "Passw0rd-Passw0rd-Passw0rd-Passw0rd"),
    parse_fernet_keys: ("sometimes", "-1", "not a fernet key at all", "A" * 43 + "=", "9" * 400),
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


SIGNING_KEY = "hunter2-signing-key-made-of-random-Xw8Lq3Vz"
OLD_SIGNING_KEY = "hunter2-older-signing-key-still-valid-Jm4Ty7"
FERNET_KEY = "hunter2aJATcLi3xvjVO1xwIQgKbAV6NhG7lb-yG4Zk="


def test_the_broker_url_is_off_when_empty_and_kept_out_of_the_settings_repr():
    assert load_deferred_task_settings({}, {"APP_DEFERRED_TASK_BROKER_URL": " "}).broker_url == ""
    url = "redis://:hunter2-secret@127.0.0.1:6379/0"
    settings = load_deferred_task_settings({"deferred_task.broker_url": url,
                                            "deferred_task.signing_key": SIGNING_KEY}, {})
    assert settings.broker_url == url and "hunter2" not in repr(settings)


def test_a_broker_without_a_signing_key_is_refused_saying_how_to_make_one():
    with pytest.raises(ConfigError) as refused:
        load_deferred_task_settings({"deferred_task.broker_url": "redis://127.0.0.1:6379/0"}, {})
    message = str(refused.value)
    assert "deferred_task.signing_key (APP_DEFERRED_TASK_SIGNING_KEY) is required" in message
    assert "secrets.token_urlsafe(32)" in message


def test_signing_and_encryption_keys_are_lists_for_rotation_and_never_in_the_repr():
    settings = load_deferred_task_settings(
        {"deferred_task.broker_url": "redis://127.0.0.1:6379/0"},
        {"APP_DEFERRED_TASK_SIGNING_KEY": f" {SIGNING_KEY} , {OLD_SIGNING_KEY}",
         "APP_DEFERRED_TASK_ENCRYPTION_KEY": FERNET_KEY},
    )
    assert settings.signing_keys == (SIGNING_KEY, OLD_SIGNING_KEY)
    assert settings.encryption_keys == (FERNET_KEY,)
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)


@pytest.mark.parametrize(("raw", "why"), [
    ("hunter2-short", "key 1 of 1 is shorter than 32 characters"),
    ("hunter2" * 5, "key 1 of 1 is too easy to guess"),
    ("h" * 400, "key 1 of 1 is too easy to guess"),
    (f"{SIGNING_KEY},", "key 2 of 2 is empty"),
    (f"{SIGNING_KEY}, hunter2-short", "key 2 of 2 is shorter"),
    (f"{SIGNING_KEY},{SIGNING_KEY}", "lists the same key twice"),
    ("hunter2 with a space in the middle of it", "is empty|characters that are not allowed|shorter"),
])
def test_a_short_low_entropy_or_repeated_signing_key_is_refused_without_being_shown(raw, why):
    with pytest.raises(ConfigError, match=why) as refused:
        load_deferred_task_settings({}, {"APP_DEFERRED_TASK_SIGNING_KEY": raw})
    message = str(refused.value)
    assert "APP_DEFERRED_TASK_SIGNING_KEY (value hidden)" in message and "hunter2" not in message
    assert "secrets.token_urlsafe(32)" in message  # how to make a good one


@pytest.mark.parametrize("raw", [
    "hunter2-not-a-fernet-key", FERNET_KEY[:-2] + "==", FERNET_KEY.rstrip("=") + "A", "A" * 43 + "=",
    f"{FERNET_KEY},{FERNET_KEY}", "hunter2aJATcLi3xvjVO1xwIQgKbAV6NhG7lb+yG4Zk=",
])
def test_a_bad_encryption_key_is_refused_naming_the_setting_without_showing_it(raw):
    with pytest.raises(ConfigError) as refused:
        load_deferred_task_settings({"deferred_task.encryption_key": raw}, {})
    message = str(refused.value)
    assert "deferred_task.encryption_key (.ini setting) (value hidden)" in message
    assert "hunter2" not in message and "Fernet.generate_key()" in message


def test_the_same_key_for_signing_and_encryption_is_refused():
    with pytest.raises(ConfigError, match="share a key: give each its own"):
        load_deferred_task_settings({}, {"APP_DEFERRED_TASK_SIGNING_KEY": FERNET_KEY,
                                         "APP_DEFERRED_TASK_ENCRYPTION_KEY": FERNET_KEY})


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


TOKEN = "GsDLMjeR2BXhtlY8YF_7yhr1VGOmBgUpDwYndV7hyds"
"""Random, as ``secrets.token_urlsafe(32)`` makes them."""


@pytest.mark.parametrize("cls", [DashboardSettings, MetricsSettings])
def test_a_random_token_is_taken_and_kept_out_of_every_repr(cls):
    [(item, decl)] = [(item, decl) for item, decl in declared(cls) if item.name == "token"]
    settings = load(cls, {decl.key: TOKEN}, {})
    assert settings.token == TOKEN and not item.repr
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)


@pytest.mark.parametrize("token", ["a" * 32, "password12345678" * 2])
def test_a_guessable_token_is_refused_saying_how_to_make_a_good_one(token):
    with pytest.raises(ConfigError) as error:
        load(DashboardSettings, {}, {"APP_DASHBOARD_TOKEN": token})
    message = str(error.value)
    assert "APP_DASHBOARD_TOKEN" in message and "too easy to guess" in message and token not in message
    assert "secrets.token_urlsafe(32)" in message


@pytest.mark.parametrize("token", ["", "   "])
def test_an_empty_token_means_no_token(token):
    assert load(DashboardSettings, {}, {"APP_DASHBOARD_TOKEN": token}).token == ""

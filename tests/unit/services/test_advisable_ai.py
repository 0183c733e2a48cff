from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.services.advisable_ai import AdvisableAISettings, Signal, SignalType


def test_each_signal_type_maps_to_its_task_name() -> None:
    assert Signal(SignalType.REMOVE_FROM_CART, item_id="p", user_id="u").task_name == (
        "advisable_ai.remove_from_cart"
    )


def test_the_json_leaves_out_what_is_not_known() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    assert Signal(SignalType.VIEW, item_id="p", session_id="s", timestamp=moment).to_json() == {
        "type": "view",
        "session_id": "s",
        "item_id": "p",
        "timestamp": "2026-01-02T03:04:05.000+00:00",
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type": SignalType.VIEW, "item_id": "p"},  # nobody
        {"type": SignalType.BOOKMARK, "user_id": "u"},  # no item
        {"type": SignalType.RATING, "item_id": "p", "user_id": "u"},  # no rating
        {"type": SignalType.RATING, "item_id": "p", "user_id": "u", "value": 6},
        {"type": SignalType.SESSION_SWITCH, "user_id": "u"},  # no session
        {"type": SignalType.SESSION_SWITCH, "user_id": "u", "session_id": "s", "item_id": "p"},
        {
            "type": SignalType.VIEW,
            "item_id": "p",
            "user_id": "u",
            "timestamp": datetime(2026, 1, 1),
        },
        {"type": "view", "item_id": "p", "user_id": "u"},
    ],
    ids=[
        "nobody",
        "no-item",
        "no-rating",
        "rating-6",
        "half-switch",
        "switch-item",
        "naive",
        "str",
    ],
)
def test_invalid_signals_fail_when_built_in_the_request(kwargs: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        Signal(**kwargs)  # type: ignore[arg-type]


def test_settings_need_both_url_and_key_or_neither() -> None:
    assert AdvisableAISettings.from_environ({}).signals_url is None
    with pytest.raises(
        ValueError, match="ADVISABLE_AI_API_KEY set but ADVISABLE_AI_SIGNALS_URL not"
    ):
        AdvisableAISettings.from_environ({"ADVISABLE_AI_API_KEY": "k"})

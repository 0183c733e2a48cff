from __future__ import annotations

import pickle
from dataclasses import dataclass

import pytest

from app.services.secret import MASK, Redactor, Secret


def test_a_secret_shows_only_a_mask_however_it_is_printed() -> None:
    secret = Secret("s3cr3t-value")

    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % (secret,)]  # noqa: UP031

    assert all("s3cr3t-value" not in text for text in shown)
    assert secret.reveal() == "s3cr3t-value"


def test_a_dataclass_holding_a_secret_has_a_safe_repr() -> None:
    @dataclass(frozen=True)
    class Settings:
        token: Secret

    assert "s3cr3t-value" not in repr(Settings(Secret("s3cr3t-value")))


def test_a_secret_cannot_be_pickled() -> None:
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(Secret("s3cr3t-value"))


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        Secret("")


def test_the_redactor_masks_every_known_secret_and_ignores_missing_ones() -> None:
    redact = Redactor([Secret("abc123"), None, Secret("zz9")])

    assert redact("token=abc123&key=zz9&abc12") == f"token={MASK}&key={MASK}&abc12"


def test_the_redactor_masks_a_secret_containing_another_as_a_whole() -> None:
    redact = Redactor([Secret("abc"), Secret("xxabcxx")])

    assert redact("value xxabcxx") == f"value {MASK}"

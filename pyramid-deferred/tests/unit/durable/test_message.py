"""The sealed message: what a web process writes, and what a worker agrees to read. The
signature is checked first, against every signing key; the arguments are encrypted when a key
is set; any change to any field, a missing or extra field, an unsigned message or one signed
with another key is refused."""

from __future__ import annotations

import dataclasses
import json

import pytest
from cryptography.fernet import Fernet

from pyramid_deferred.durable import (
    ForgedMessage,
    MessageCodec,
    SpilledTask,
    UndecryptablePayload,
)
from pyramid_deferred.durable.message import FIELDS, SIGNATURE

SIGNING = "a-signing-key-for-the-codec-tests-8Yq2LmZx"
OLD_SIGNING = "an-older-signing-key-still-verifying-P4kT9"
ENCRYPTION = Fernet.generate_key().decode()
OLD_ENCRYPTION = Fernet.generate_key().decode()
EMAIL, PHONE = "ewa.nowak@example.com", "+48 601 234 567"
TASK = SpilledTask(
    key="rid-1:0a1b2c3d:meta.purchase:2", request_id="rid-1", name="meta.purchase",
    function="app.durable_tasks:meta_event", payload=json.dumps([[{"email": EMAIL, "phone": PHONE}], {}]),
    reason="failed", lease_seconds=61.5,
)


def test_a_sealed_message_opens_to_the_same_task_and_is_json_with_always_the_same_fields():
    codec = MessageCodec([SIGNING])
    message = codec.seal(TASK)
    assert message.keys() == FIELDS and message["v"] == 1 and message["encrypted"] is False
    assert json.loads(json.dumps(message)) == message  # what the broker carries, unchanged
    assert codec.open(json.loads(json.dumps(message))) == TASK
    assert codec.seal(dataclasses.replace(TASK, key="other")).keys() == message.keys()


@pytest.mark.parametrize("field", sorted(FIELDS - {SIGNATURE}))
def test_a_message_with_any_field_altered_is_refused(field):
    message = MessageCodec([SIGNING]).seal(TASK)
    value = message[field]
    message[field] = (not value if isinstance(value, bool) else value + 1 if isinstance(value, int)
                      else "os:system" if field == "function" else f"{value}x")
    with pytest.raises(ForgedMessage, match="signature matches none of the signing keys"):
        MessageCodec([SIGNING]).open(message)


def test_a_message_with_a_field_added_or_removed_is_refused():
    codec = MessageCodec([SIGNING])
    added = {**codec.seal(TASK), "countdown": 0}
    removed = codec.seal(TASK)
    del removed["reason"]
    for message in (added, removed):
        with pytest.raises(ForgedMessage, match="signature"):
            codec.open(message)


@pytest.mark.parametrize(("message", "why"), [
    ("a string", "not a JSON object"),
    ([1, 2], "not a JSON object"),
    ({"function": "os:system", "payload": "[[\"id\"],{}]"}, "not signed"),
    ({**MessageCodec([SIGNING]).seal(TASK), SIGNATURE: None}, "not signed"),
    ({**MessageCodec([SIGNING]).seal(TASK), SIGNATURE: "ż" * 64}, "signature matches none"),
    ({**MessageCodec([SIGNING]).seal(TASK), "nested": [[[]]] * 3, "nan": float("nan")}, "cannot be encoded"),
])
def test_an_unsigned_or_malformed_message_is_refused_saying_why_without_its_content(message, why):
    with pytest.raises(ForgedMessage, match=why) as refused:
        MessageCodec([SIGNING]).open(message)
    assert "os:system" not in str(refused.value) and EMAIL not in str(refused.value)


def test_a_message_signed_with_another_key_is_refused():
    message = MessageCodec(["somebody-else-s-key-that-is-long-enough-3Jv8"]).seal(TASK)
    with pytest.raises(ForgedMessage, match="signature"):
        MessageCodec([SIGNING]).open(message)


def test_rotation_the_first_key_signs_and_every_key_verifies():
    old = MessageCodec([OLD_SIGNING])
    rotated = MessageCodec([SIGNING, OLD_SIGNING])
    assert rotated.open(old.seal(TASK)) == TASK  # sealed before the rotation: still read
    with pytest.raises(ForgedMessage):
        old.open(rotated.seal(TASK))  # sealed with the new key, which the old list lacks
    assert MessageCodec([SIGNING]).open(rotated.seal(TASK)) == TASK


def test_the_signature_is_checked_before_the_payload_is_decrypted_or_decoded():
    codec = MessageCodec([SIGNING], [ENCRYPTION])
    message = codec.seal(TASK)
    message.update(payload="not a Fernet token", function="os:system")  # would fail to decrypt
    with pytest.raises(ForgedMessage, match="signature"):  # not UndecryptablePayload: not read at all
        codec.open(message)


def test_a_signed_message_of_another_shape_is_refused_as_malformed():
    from pyramid_deferred.durable import message as wire

    codec = MessageCodec([SIGNING])
    for change in ({"v": 2}, {"v": True}, {"lease_ms": "60000"}, {"encrypted": 1},
                   {"payload": '{"not": "a list"}'}):
        message = {**codec.seal(TASK), **change}
        del message[SIGNATURE]
        message[SIGNATURE] = wire._mac(SIGNING.encode(), wire._canonical(message)).decode()
        with pytest.raises(ForgedMessage, match=r"version 1|wrong type|payload"):
            codec.open(message)


def test_with_an_encryption_key_the_arguments_are_not_in_the_message_and_come_back_unchanged():
    codec = MessageCodec([SIGNING], [ENCRYPTION])
    message = codec.seal(TASK)
    text = json.dumps(message)
    assert message["encrypted"] is True and EMAIL not in text and PHONE not in text
    assert "meta.purchase" in text and TASK.key in text  # the identity stays readable: logs, listings
    assert codec.open(message) == TASK


def test_encryption_rotation_the_first_key_encrypts_and_every_key_decrypts():
    old = MessageCodec([SIGNING], [OLD_ENCRYPTION])
    rotated = MessageCodec([SIGNING], [ENCRYPTION, OLD_ENCRYPTION])
    assert rotated.open(old.seal(TASK)) == TASK
    with pytest.raises(UndecryptablePayload):
        old.open(rotated.seal(TASK))


def test_a_payload_this_process_cannot_decrypt_names_the_task_and_the_setting():
    message = MessageCodec([SIGNING], [ENCRYPTION]).seal(TASK)
    for codec in (MessageCodec([SIGNING]), MessageCodec([SIGNING], [OLD_ENCRYPTION])):
        with pytest.raises(UndecryptablePayload, match="encryption_key") as raised:
            codec.open(message)
        assert raised.value.task == dataclasses.replace(TASK, payload="")


def test_the_codec_never_shows_its_keys():
    codec = MessageCodec([SIGNING, OLD_SIGNING], [ENCRYPTION])
    shown = repr(codec) + str(codec)
    assert SIGNING not in shown and ENCRYPTION not in shown and "2 signing key(s)" in shown

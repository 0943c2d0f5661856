import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tasks.settings import reset_settings
from tasks.storage import object_store
from tasks.webhooks.payloads import MAX_PAYLOAD_BYTES, full_payload_key, payload_body, serialize
from tasks.webhooks.signing import (
    generate_secret,
    secrets_in_force,
    sign,
    signature_header,
    validate_secret,
)

BODY = b'{"type":"alert.created","timestamp":"2026-11-25T00:00:00+00:00","data":{"id":1}}'


def test_generated_secret_is_whsec_and_32_random_bytes():
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


def test_secret_hides_itself_in_repr_but_not_in_str():
    secret = generate_secret()
    assert str(secret) not in repr(secret)
    assert str(secret) not in repr((7, secret))
    assert f"{secret}".startswith("whsec_") and len(str(secret)) > 40


def test_signature_is_what_the_reference_library_computes():
    secret = generate_secret()
    now = datetime.now(UTC).replace(microsecond=0)
    ours = sign(secret, "msg_1", int(now.timestamp()), BODY)
    assert ours == Webhook(secret).sign("msg_1", now, BODY.decode())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": ours,
    }
    assert Webhook(secret).verify(BODY, headers)["data"] == {"id": 1}


def test_signature_uses_the_decoded_key_not_the_secret_string():
    import hashlib
    import hmac

    secret = generate_secret()
    wrong = hmac.new(secret.encode(), b"msg_1.1." + BODY, hashlib.sha256).digest()
    assert sign(secret, "msg_1", 1, BODY) != "v1," + base64.b64encode(wrong).decode()


def test_header_carries_one_signature_per_secret_and_each_verifies():
    new, old, stranger = generate_secret(), generate_secret(), generate_secret()
    ts = int(datetime.now(UTC).timestamp())
    header = signature_header([new, old], "msg_2", ts, BODY)
    assert len(header.split(" ")) == 2
    headers = {"webhook-id": "msg_2", "webhook-timestamp": str(ts), "webhook-signature": header}
    Webhook(new).verify(BODY, headers)
    Webhook(old).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(BODY, headers)


def test_previous_secret_signs_only_until_it_expires():
    now = datetime(2026, 11, 25, tzinfo=UTC)
    assert secrets_in_force("new", "old", now + timedelta(hours=1), now) == ["new", "old"]
    assert secrets_in_force("new", "old", now - timedelta(seconds=1), now) == ["new"]
    assert secrets_in_force("new", None, None, now) == ["new"]


def test_ids_with_dots_and_malformed_secrets_are_refused_without_echoing_the_secret():
    with pytest.raises(ValueError, match="must not contain"):
        sign(generate_secret(), "msg.1", 1, BODY)
    with pytest.raises(ValueError) as caught:
        sign("whsec_not base64!!", "msg_1", 1, BODY)
    assert "not base64!!" not in str(caught.value)


def _secret_of(n_bytes: int) -> str:
    return "whsec_" + base64.b64encode(bytes(range(n_bytes))).decode()


def test_a_supplied_secret_must_be_whsec_and_24_to_64_bytes():
    for size in (24, 32, 64):
        assert validate_secret(_secret_of(size)) == _secret_of(size)
    assert repr(validate_secret(_secret_of(32))) == "WebhookSecret('whsec_***')"
    for size in (23, 65):
        with pytest.raises(ValueError, match=f"24 to 64 bytes after whsec_, this one {size}"):
            validate_secret(_secret_of(size))
    for bad, sentence, value in (
        ("sk_live_abcdef", "starts with whsec_", "abcdef"),
        ("whsec_has spaces!!", "not whsec_ followed by base64", "spaces"),
        ("whsec_", "is empty", None),
    ):
        with pytest.raises(ValueError, match=sentence) as caught:
            validate_secret(bad)
        assert value is None or value not in str(caught.value)


# The body: the exact bytes signed and sent, under 20 kB, the whole payload linked when larger.

def _payload(data: dict) -> dict:
    return {"type": "report.published", "timestamp": "2026-11-25T06:00:00+00:00", "data": data}


def _sized(total_bytes: int) -> dict:
    """A payload whose compact JSON is exactly `total_bytes` long."""
    frame = len(serialize(_payload({"pad": ""})))
    return _payload({"pad": "x" * (total_bytes - frame)})


def test_a_payload_up_to_20_kb_is_sent_as_it_is_and_nothing_is_stored(home):
    payload = _sized(MAX_PAYLOAD_BYTES)
    body = payload_body("riverton", "msg_small", payload)
    assert len(body) == MAX_PAYLOAD_BYTES and json.loads(body) == payload
    assert not object_store().exists(full_payload_key("riverton", "msg_small"))


def test_a_larger_payload_goes_to_object_storage_and_the_body_links_it(home):
    payload = _sized(MAX_PAYLOAD_BYTES + 1)
    body = payload_body("riverton", "msg_big", payload)
    again = payload_body("riverton", "msg_big", payload)

    key = "webhooks/riverton/msg_big.json"
    stored = object_store().get_bytes(key)
    sent = json.loads(body)
    assert stored == serialize(payload) and len(stored) == MAX_PAYLOAD_BYTES + 1
    assert sent == {
        "type": "report.published",
        "timestamp": "2026-11-25T06:00:00+00:00",
        "data": {
            "truncated": True,
            "url": object_store().url(key),
            "sha256": hashlib.sha256(stored).hexdigest(),
            "size_bytes": MAX_PAYLOAD_BYTES + 1,
        },
    }
    assert len(body) < 1_000 and again == body  # a retry links the same stored copy
    secret = generate_secret()
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_big",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sign(secret, "msg_big", int(now.timestamp()), body),
    }
    assert Webhook(secret).verify(body, headers)["data"]["size_bytes"] == MAX_PAYLOAD_BYTES + 1


def test_the_link_uses_the_public_base_url_when_one_is_set(home, monkeypatch):
    monkeypatch.setenv("WATERLINE_PUBLIC_BASE_URL", "https://files.waterline.example/objects/")
    reset_settings()
    body = payload_body("lakeside", "msg_big", _sized(30_000))
    assert json.loads(body)["data"]["url"] == (
        "https://files.waterline.example/objects/webhooks/lakeside/msg_big.json"
    )
    assert object_store().exists("webhooks/lakeside/msg_big.json")

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tasks.webhooks.signing import (
    generate_secret,
    secrets_in_force,
    sign,
    signature_header,
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
